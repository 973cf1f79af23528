//! The TaskManager Deployment: pods that start, register after a while, leave gracefully or
//! vanish, and the names and hosts they show in the exported series.

use super::{FlinkJob, ScaleDown};

#[derive(Debug, Clone, PartialEq)]
pub(super) struct TmPod {
    pub(super) serial: u64,
    pub(super) created: f64,
}

impl FlinkJob {
    fn registered_at(&self, p: &TmPod) -> f64 {
        p.created + self.config.task_manager_start_seconds
    }

    /// TaskManager pods that exist (the Deployment's `status.replicas`).
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// TaskManagers the JobManager counts as registered, including lost ones not yet detected.
    pub fn registered_task_managers(&self) -> usize {
        self.pods
            .iter()
            .filter(|p| self.registered_at(p) <= self.t)
            .count()
            + self.lost.len()
    }

    pub(super) fn live_slots(&self) -> usize {
        self.pods
            .iter()
            .filter(|p| self.registered_at(p) <= self.t)
            .count()
            * self.config.slots_per_task_manager
    }

    /// The pods the scale selector matches, as the HPA's pod lister sees them.
    pub fn pods(&self) -> Vec<crate::hpa::Pod> {
        self.pods
            .iter()
            .map(|p| {
                let running = self.t >= p.created + self.config.pod_pending_seconds;
                crate::hpa::Pod {
                    name: self.pod_name(p.serial),
                    phase: if running {
                        crate::hpa::PodPhase::Running
                    } else {
                        crate::hpa::PodPhase::Pending
                    },
                    ready: running,
                    deleted: false,
                }
            })
            .collect()
    }

    pub fn pod_name(&self, serial: u64) -> String {
        // A Deployment's pod names: `<deployment>-<template hash>-<5 random characters>`.
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut x = serial.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5DEE_CE66;
        let mut s = String::new();
        for _ in 0..5 {
            s.push(ALPHABET[(x % ALPHABET.len() as u64) as usize] as char);
            x /= ALPHABET.len() as u64;
        }
        format!("flink-taskmanager-5d8f7c9b4-{s}")
    }

    /// The Deployment is scaled to `n` TaskManagers now: new pods start, or the newest pods go.
    pub fn set_replicas(&mut self, n: usize) {
        self.replicas = n;
        while self.pods.len() < n {
            self.pods.push(TmPod {
                serial: self.next_serial,
                created: self.t,
            });
            self.next_serial += 1;
        }
        while self.pods.len() > n {
            let Some(p) = self.pods.pop() else { break };
            let registered = self.registered_at(&p) <= self.t;
            if !registered {
                continue;
            }
            match self.config.scale_down {
                ScaleDown::Graceful => {}
                ScaleDown::Ungraceful { detect_seconds } => {
                    // Its tasks fail at once; the job keeps restarting onto the dead slots
                    // until the JobManager notices.
                    let until = self.t + detect_seconds;
                    self.lost.push((p, until));
                    if self.tasks_deployed() || self.t < self.down_until {
                        self.num_restarts += 1;
                        self.down_until = self.down_until.max(until);
                        self.init_until = self.init_until.max(until);
                    }
                }
            }
        }
    }

    pub(super) fn tm_of_subtask(&self, subtask: usize) -> Option<u64> {
        let mut live: Vec<u64> = self
            .pods
            .iter()
            .filter(|p| self.registered_at(p) <= self.t)
            .map(|p| p.serial)
            .collect();
        live.extend(self.lost.iter().map(|(p, _)| p.serial));
        live.sort_unstable();
        live.get(subtask / self.config.slots_per_task_manager.max(1))
            .copied()
    }

    pub(super) fn host(serial: u64) -> String {
        format!("10_244_{}_{}", 1 + serial / 250, 2 + serial % 250)
    }
}
