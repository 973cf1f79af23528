//! `plot.png`: load against capacity, TaskManagers against the oracle, and the backlog, over
//! time. Text is drawn with a font compiled into the binary (a subset of DejaVu Sans), so
//! the plot needs no system fonts or fontconfig.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::sim::{oracle_task_managers, Row};

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-subset.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are valid TrueType (the font test reads them); if not, text is missing
        // from the plot and drawing reports the error.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn minutes(t: f64) -> f64 {
    t / 60.0
}

/// Draws the three panels to `path` (PNG).
pub fn draw(
    path: &Path,
    rows: &[Row],
    capacity_per_task_manager: f64,
    title: &str,
) -> Result<(), String> {
    register_font();
    let root = BitMapBackend::new(path, (1200, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let root = root
        .titled(
            &format!("HPA {title}: what it would do"),
            ("sans-serif", 22).into_font(),
        )
        .map_err(|e| e.to_string())?;
    let panels = root.split_evenly((3, 1));
    let t_end = rows.last().map(|r| minutes(r.t)).unwrap_or(1.0).max(1.0);
    let max_of = |f: &dyn Fn(&Row) -> f64| -> f64 {
        rows.iter()
            .map(f)
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max)
    };

    // 1. Records/s: arrivals against what the job can process.
    let y1 = max_of(&|r| r.arrival_rate.max(r.capacity)).max(1.0) * 1.1;
    let mut c = ChartBuilder::on(&panels[0])
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .caption("records/s: arrivals and capacity", ("sans-serif", 16))
        .build_cartesian_2d(0.0..t_end, 0.0..y1)
        .map_err(|e| e.to_string())?;
    c.configure_mesh()
        .x_desc("minutes")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| e.to_string())?;
    c.draw_series(LineSeries::new(
        rows.iter().map(|r| (minutes(r.t), r.arrival_rate)),
        BLUE.stroke_width(2),
    ))
    .map_err(|e| e.to_string())?
    .label("arrivals")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    c.draw_series(LineSeries::new(
        rows.iter().map(|r| (minutes(r.t), r.capacity)),
        RED.stroke_width(2),
    ))
    .map_err(|e| e.to_string())?
    .label("capacity (0 while restarting)")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(|e| e.to_string())?;

    // 2. TaskManagers: what the HPA runs against the least that keeps up.
    let y2 = max_of(&|r| {
        (r.task_managers as f64)
            .max(r.desired_replicas as f64)
            .max(oracle_task_managers(r.arrival_rate, capacity_per_task_manager) as f64)
    })
    .max(1.0)
        + 1.0;
    let mut c = ChartBuilder::on(&panels[1])
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .caption("TaskManagers", ("sans-serif", 16))
        .build_cartesian_2d(0.0..t_end, 0.0..y2)
        .map_err(|e| e.to_string())?;
    c.configure_mesh()
        .x_desc("minutes")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| e.to_string())?;
    let steps = |f: &dyn Fn(&Row) -> f64| -> Vec<(f64, f64)> {
        let mut pts = Vec::with_capacity(rows.len() * 2);
        for (i, r) in rows.iter().enumerate() {
            if i > 0 {
                pts.push((minutes(r.t), f(&rows[i - 1])));
            }
            pts.push((minutes(r.t), f(r)));
        }
        pts
    };
    c.draw_series(LineSeries::new(
        steps(&|r| oracle_task_managers(r.arrival_rate, capacity_per_task_manager) as f64),
        BLACK.mix(0.5).stroke_width(1),
    ))
    .map_err(|e| e.to_string())?
    .label("oracle: least that keeps up")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.5)));
    c.draw_series(LineSeries::new(
        steps(&|r| r.desired_replicas as f64),
        GREEN.stroke_width(2),
    ))
    .map_err(|e| e.to_string())?
    .label("TaskManagers (HPA)")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN.stroke_width(2)));
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(|e| e.to_string())?;

    // 3. Backlog, records.
    let y3 = max_of(&|r| r.backlog).max(1.0) * 1.1;
    let mut c = ChartBuilder::on(&panels[2])
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .caption("backlog, records", ("sans-serif", 16))
        .build_cartesian_2d(0.0..t_end, 0.0..y3)
        .map_err(|e| e.to_string())?;
    c.configure_mesh()
        .x_desc("minutes")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| e.to_string())?;
    c.draw_series(AreaSeries::new(
        rows.iter().map(|r| (minutes(r.t), r.backlog)),
        0.0,
        MAGENTA.mix(0.3),
    ))
    .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}
