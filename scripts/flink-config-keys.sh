#!/usr/bin/env bash
# Lists the configuration keys a Flink release understands, from the release's own jars, so a
# test can check manifests/flink against them without downloading Flink on every run.
#
# Usage: scripts/flink-config-keys.sh [VERSION]     (default 1.20.5; needs pip, java and javac 11+)
#
# Writes, for the given version:
#   tests/data/flink-<VERSION>-config-keys.tsv  key, value type, status (see the header it writes)
#   tests/data/flink-<VERSION>-java-opts.txt    env.java.opts.all of the shipped conf/config.yaml
#
# Source: the PyPI packages apache-flink-libraries (flink-dist and the plugins, 232 MB) and
# apache-flink (conf/), which carry the same jars as the binary release. Keys come from every
# static ConfigOption field of the org.apache.flink classes in flink-dist and in the Prometheus
# reporter plugin whose name mentions "Option" (CoreOptions, JobManagerOptions,
# CheckpointingOptions, MetricOptions, ...), plus the Prometheus reporter's own ARG_* keys, which
# it reads as plain strings. Options documented as suffixes (per-reporter options such as
# factory.class) are written with the placeholder, e.g. metrics.reporter.<name>.factory.class.
set -euo pipefail

version="${1:-1.20.5}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
out_keys="$repo/tests/data/flink-$version-config-keys.tsv"
out_opts="$repo/tests/data/flink-$version-java-opts.txt"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

pip download --quiet --no-deps "apache-flink-libraries==$version" -d "$work/dl"
pip download --quiet --no-deps "apache-flink==$version" -d "$work/dl"

libs="$(find "$work/dl" -name "apache_flink_libraries-$version*" | head -n1)"
case "$libs" in
  *.tar.gz) tar -xzf "$libs" -C "$work" ;;
  *.whl) (cd "$work" && unzip -q "$libs") ;;
  *) echo "apache-flink-libraries $version: no package downloaded" >&2; exit 1 ;;
esac
dist="$(find "$work" -name "flink-dist-$version.jar" | head -n1)"
prom="$(find "$work" -name "flink-metrics-prometheus-$version.jar" | head -n1)"
log4j="$(find "$work" -path '*/lib/log4j-*.jar' | tr '\n' ':')"
[ -n "$dist" ] && [ -n "$prom" ] || { echo "flink-dist or the Prometheus reporter jar is missing" >&2; exit 1; }

mkdir -p "$work/app" && (cd "$work/app" && unzip -q "$work"/dl/apache_flink-"$version"-*.whl 'pyflink/conf/config.yaml')

mkdir -p "$work/src" "$work/classes"
cat > "$work/src/ListKeys.java" <<'JAVA'
import java.io.File;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.net.URL;
import java.net.URLClassLoader;
import java.util.ArrayList;
import java.util.Enumeration;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;

/** Prints "key TAB type TAB status" for every ConfigOption of the given jars. */
public class ListKeys {
    static final Map<String, String> rows = new TreeMap<>();

    public static void main(String[] args) throws Exception {
        List<URL> urls = new ArrayList<>();
        for (String path : args[0].split(":")) {
            if (!path.isEmpty()) urls.add(new File(path).toURI().toURL());
        }
        URLClassLoader loader = new URLClassLoader(urls.toArray(new URL[0]), null);
        Class<?> optionClass = loader.loadClass("org.apache.flink.configuration.ConfigOption");
        Class<?> fallbackClass = loader.loadClass("org.apache.flink.configuration.FallbackKey");
        @SuppressWarnings("unchecked")
        Class<? extends java.lang.annotation.Annotation> suffixClass =
                (Class<? extends java.lang.annotation.Annotation>)
                        loader.loadClass("org.apache.flink.annotation.docs.Documentation$SuffixOption");
        Method key = optionClass.getMethod("key");
        Method clazz = optionClass.getDeclaredMethod("getClazz");
        clazz.setAccessible(true);
        Method isList = optionClass.getDeclaredMethod("isList");
        isList.setAccessible(true);
        Method fallbackKeys = optionClass.getMethod("fallbackKeys");
        Method fallbackKey = fallbackClass.getMethod("getKey");
        Method fallbackDeprecated = fallbackClass.getMethod("isDeprecated");
        Method suffixValue = suffixClass.getMethod("value");

        int classes = 0, failed = 0;
        for (int i = 1; i < args.length; i++) {
            try (JarFile jar = new JarFile(args[i])) {
                for (Enumeration<JarEntry> e = jar.entries(); e.hasMoreElements(); ) {
                    String name = e.nextElement().getName();
                    if (!name.startsWith("org/apache/flink/") || !name.endsWith(".class")) continue;
                    // Relocated third-party code (netty, zookeeper) holds no Flink options.
                    if (name.startsWith("org/apache/flink/shaded/")) continue;
                    String simple = name.substring(name.lastIndexOf('/') + 1);
                    if (!simple.contains("Option")) continue;
                    String className = name.substring(0, name.length() - 6).replace('/', '.');
                    Class<?> c;
                    try {
                        c = Class.forName(className, true, loader);
                        for (Field f : c.getDeclaredFields()) {
                            f.getName(); // touch the fields now so a missing type fails here
                        }
                    } catch (Throwable t) {
                        failed++;
                        System.err.println("skipped " + className + ": " + t);
                        continue;
                    }
                    classes++;
                    for (Field f : c.getDeclaredFields()) {
                        int m = f.getModifiers();
                        if (!Modifier.isStatic(m)) continue;
                        if (optionClass.isAssignableFrom(f.getType())) {
                            f.setAccessible(true);
                            Object option = f.get(null);
                            if (option == null) continue;
                            String prefix = "";
                            Object suffix = f.getAnnotation(suffixClass);
                            if (suffix != null) prefix = placeholder((String) suffixValue.invoke(suffix));
                            String type = typeOf((Class<?>) clazz.invoke(option), (Boolean) isList.invoke(option));
                            boolean deprecated = f.isAnnotationPresent(Deprecated.class);
                            put(prefix + key.invoke(option), type, deprecated ? "deprecated" : "current");
                            for (Object fb : (Iterable<?>) fallbackKeys.invoke(option)) {
                                boolean dep = (Boolean) fallbackDeprecated.invoke(fb);
                                put(prefix + fallbackKey.invoke(fb), type, dep ? "deprecated" : "fallback");
                            }
                        }
                    }
                }
            }
        }
        // The Prometheus reporter reads its arguments (port) as plain strings, not ConfigOptions.
        for (String factory : new String[] {"org.apache.flink.metrics.prometheus.PrometheusReporterFactory"}) {
            Class<?> c = Class.forName(factory, true, loader);
            for (Field f : c.getDeclaredFields()) {
                if (f.getType() == String.class && Modifier.isStatic(f.getModifiers()) && f.getName().startsWith("ARG_")) {
                    f.setAccessible(true);
                    put("metrics.reporter.<name>." + f.get(null), "String", "current");
                }
            }
        }
        System.out.println("# key\ttype\tstatus (current | fallback | deprecated)");
        for (Map.Entry<String, String> row : rows.entrySet()) {
            System.out.println(row.getKey() + "\t" + row.getValue());
        }
        System.err.println(rows.size() + " keys from " + classes + " classes; " + failed + " classes could not be loaded");
    }

    /** A suffix option's documented prefix, e.g. "metrics.reporter.<name>", joined with a dot. */
    static String placeholder(String prefix) {
        if (prefix.endsWith(".")) prefix = prefix.substring(0, prefix.length() - 1);
        return prefix.contains("<") ? prefix + "." : prefix + ".<name>.";
    }

    static void put(String key, String type, String status) {
        String row = type + "\t" + status;
        String old = rows.get(key);
        // A key declared twice keeps its most permissive reading: current over fallback over deprecated.
        if (old == null || rank(status) < rank(old.substring(old.indexOf('\t') + 1))) rows.put(key, row);
    }

    static int rank(String status) {
        return status.equals("current") ? 0 : status.equals("fallback") ? 1 : 2;
    }

    static String typeOf(Class<?> c, boolean list) {
        String t;
        if (c.isEnum()) {
            StringBuilder b = new StringBuilder("enum:");
            Object[] values = c.getEnumConstants();
            for (int i = 0; i < values.length; i++) {
                if (i > 0) b.append('|');
                b.append(values[i].toString());
            }
            t = b.toString();
        } else {
            t = c.getSimpleName();
        }
        return list ? "List<" + t + ">" : t;
    }
}
JAVA
javac -d "$work/classes" "$work/src/ListKeys.java"
mkdir -p "$(dirname "$out_keys")"
{
  echo "# Configuration keys of Apache Flink $version, generated by scripts/flink-config-keys.sh"
  echo "# from flink-dist-$version.jar and flink-metrics-prometheus-$version.jar. Do not edit."
  java -cp "$work/classes" ListKeys "$dist:$prom:$log4j" "$dist" "$prom"
} > "$out_keys"

# The shipped config.yaml nests keys; env.java.opts.all is the JVM flags line Java 17 needs.
awk '
  /^env:/ { env = 1; next }
  env && /^[^ #]/ { env = 0 }
  env && /^  java:/ { java = 1; next }
  env && java && /^    opts:/ { opts = 1; next }
  env && java && opts && /^      all:/ { sub(/^      all: */, ""); print; exit }
' "$work/app/pyflink/conf/config.yaml" > "$out_opts"
[ -s "$out_opts" ] || { echo "env.java.opts.all not found in the shipped config.yaml" >&2; exit 1; }
echo "wrote $out_keys ($(grep -vc '^#' "$out_keys") keys) and $out_opts"
