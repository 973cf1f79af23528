package loadjob;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.api.connector.source.SourceReaderContext;
import org.apache.flink.api.connector.source.util.ratelimit.RateLimiter;
import org.apache.flink.api.connector.source.util.ratelimit.RateLimiterStrategy;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.connector.datagen.source.GeneratorFunction;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * Synthetic load job for autoscaling tests (single host only).
 *
 * Emulates a Kafka-like topic: records "arrive" at --rate-file records/s (re-read every second);
 * the source consumes them as fast as downstream allows, so a backlog builds up when the job is
 * under-provisioned. The backlog is exported as the FLIP-33 standard source metric pendingRecords
 * (Prometheus: flink_taskmanager_job_task_operator_pendingRecords). Arrivals are persisted in
 * --ledger so the backlog survives reactive rescales (consumed position comes from the checkpointed
 * split). Source is pinned to parallelism 1; "work" (--work-us per record, sleep or spin) and "agg"
 * (keyed reduce) scale with the available slots.
 */
public class LoadJob {

    static Map<String, String> parse(String[] args) {
        Map<String, String> m = new HashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) m.put(args[i].replaceFirst("^--", ""), args[i + 1]);
        return m;
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> p = parse(args);
        final String rateFile = p.getOrDefault("rate-file", "rate");
        final String ledger = p.getOrDefault("ledger", "ledger");
        final double defRate = Double.parseDouble(p.getOrDefault("rate", "2000"));
        final int workUs = Integer.parseInt(p.getOrDefault("work-us", "1000"));
        final int recordBytes = Integer.parseInt(p.getOrDefault("record-bytes", "256"));
        final boolean spin = "spin".equals(p.getOrDefault("work-mode", "sleep"));
        final int maxPar = Integer.parseInt(p.getOrDefault("max-par", "8"));

        // main() runs once per (non-HA) JobManager start = fresh job without checkpoint: reset backlog ledger
        Files.deleteIfExists(Paths.get(ledger));

        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setMaxParallelism(maxPar);

        DataGeneratorSource<byte[]> src = new DataGeneratorSource<>(
                new Gen(recordBytes), Long.MAX_VALUE, new BacklogStrategy(rateFile, ledger, defRate),
                PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO);

        DataStream<byte[]> s = env.fromSource(src, WatermarkStrategy.noWatermarks(), "source")
                .uid("source").setParallelism(1).setMaxParallelism(1);
        s.rebalance()
                .map(new Work(workUs, spin)).name("work").uid("work")
                .keyBy(new KeySelector<byte[], Integer>() {
                    @Override public Integer getKey(byte[] r) { return (int) Math.floorMod(ByteBuffer.wrap(r).getLong(0), 1024L); }
                })
                .reduce((a, b) -> b).name("agg").uid("agg")
                .sinkTo(new DiscardingSink<>()).name("sink").uid("sink");
        env.execute("loadjob");
    }

    /** Per-JVM shared state between rate limiter, generator and gauge (source parallelism is 1). */
    static final class Backlog {
        static volatile double arrived = -1;   // cumulative arrivals; -1 = not initialised in this JVM
        static volatile long consumed = -1;    // next index to emit; -1 = unknown until first record
        static long pending() {
            double a = arrived; long c = consumed;
            return (a < 0 || c < 0) ? 0 : Math.max(0, (long) a - c);
        }
    }

    /** Emits --record-bytes byte records (first 8 bytes = sequence number); small records would let
     *  tens of thousands of records hide in network buffers and distort pendingRecords. */
    static class Gen implements GeneratorFunction<Long, byte[]> {
        final int size;
        Gen(int size) { this.size = Math.max(8, size); }
        @Override
        public void open(SourceReaderContext ctx) {
            Backlog.consumed = -1;
            ctx.metricGroup().setPendingRecordsGauge(Backlog::pending);
        }
        @Override
        public byte[] map(Long index) {
            Backlog.consumed = index + 1;
            byte[] r = new byte[size];
            ByteBuffer.wrap(r).putLong(0, index);
            return r;
        }
    }

    /** Per-record cost. sleep mode (default): capacity = 1e6/work-us rec/s per subtask without burning CPU,
     *  so scaling out helps even on a 2-core box; spin mode burns CPU. */
    static class Work extends RichMapFunction<byte[], byte[]> {
        final int workUs; final boolean spin; long debtNs;
        Work(int workUs, boolean spin) { this.workUs = workUs; this.spin = spin; }
        @Override
        public byte[] map(byte[] v) {
            if (spin) {
                long end = System.nanoTime() + workUs * 1000L;
                long x = v[0];
                while (System.nanoTime() < end) { x = x * 6364136223846793005L + 1442695040888963407L; }
                v[v.length - 1] = (byte) x;
                return v;
            }
            debtNs += workUs * 1000L;
            if (debtNs >= 1_000_000L) {
                long t0 = System.nanoTime();
                LockSupport.parkNanos(debtNs);
                debtNs -= System.nanoTime() - t0;
            }
            return v;
        }
    }

    static class BacklogStrategy implements RateLimiterStrategy {
        final String rateFile, ledger; final double def;
        BacklogStrategy(String rateFile, String ledger, double def) { this.rateFile = rateFile; this.ledger = ledger; this.def = def; }
        @Override
        public RateLimiter createRateLimiter(int parallelism) { return new BacklogLimiter(rateFile, ledger, def); }
    }

    static class BacklogLimiter implements RateLimiter {
        static final CompletableFuture<Void> DONE = CompletableFuture.completedFuture(null);
        final String rateFile, ledger; final double def;
        final ScheduledExecutorService ex = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "backlog-limiter"); t.setDaemon(true); return t; });
        double rate; long lastNanos; long lastIo;

        BacklogLimiter(String rateFile, String ledger, double def) {
            this.rateFile = rateFile; this.ledger = ledger; this.def = def;
            rate = readRate();
            double a = 0;
            try {   // continue the arrival curve across restarts/rescales
                String[] f = new String(Files.readAllBytes(Paths.get(ledger)), StandardCharsets.UTF_8).trim().split("\\s+");
                a = Double.parseDouble(f[1]) + rate * Math.max(0, System.currentTimeMillis() - Long.parseLong(f[0])) / 1000.0;
            } catch (Exception ignored) { }
            Backlog.arrived = a;
            lastNanos = System.nanoTime(); lastIo = lastNanos;
        }

        double readRate() {
            try { return Math.max(0, Double.parseDouble(new String(Files.readAllBytes(Paths.get(rateFile)), StandardCharsets.UTF_8).trim())); }
            catch (Exception e) { return def; }
        }

        void writeLedger() {
            try {
                Path tmp = Paths.get(ledger + ".tmp");
                Files.write(tmp, (System.currentTimeMillis() + " " + (long) Backlog.arrived + "\n").getBytes(StandardCharsets.UTF_8));
                Files.move(tmp, Paths.get(ledger), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            } catch (Exception ignored) { }
        }

        /** Flink 2.x RateLimiter API (acquire(int) is abstract there); 1.20 only has acquire(). */
        public CompletionStage<Void> acquire(int numberOfEvents) { return acquire(); }

        @Override
        public CompletionStage<Void> acquire() {
            long now = System.nanoTime();
            Backlog.arrived = Backlog.arrived + rate * (now - lastNanos) / 1e9;
            lastNanos = now;
            if (now - lastIo >= 1_000_000_000L) { lastIo = now; rate = readRate(); writeLedger(); }
            long c = Backlog.consumed;
            double avail = Backlog.arrived - Math.max(0, c);
            if (c < 0 || avail >= 1) return DONE;                        // backlog (or unknown position): emit now
            double waitS = rate <= 0 ? 0.1 : Math.min(0.1, Math.max(0.002, (1 - avail) / rate));
            CompletableFuture<Void> f = new CompletableFuture<>();
            ex.schedule(() -> f.complete(null), (long) (waitS * 1e6), TimeUnit.MICROSECONDS);
            return f;
        }
    }
}
