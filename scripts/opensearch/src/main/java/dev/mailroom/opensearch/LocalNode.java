package dev.mailroom.opensearch;

import java.nio.file.Path;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

/**
 * A single OpenSearch node in one JVM, for development and tests (scripts/opensearch-local).
 *
 * <p>OpenSearch's own launcher loads plugins from a distribution's modules folder and installs a
 * security manager; the jars on Maven Central have no such folder. Like OpenSearch's test
 * framework (MockNode), this subclasses {@link Node} to use its protected constructor, which takes
 * plugins found on the classpath: Netty (HTTP and transport) and the common analyzers.
 *
 * <p>Usage: {@code java -cp ... dev.mailroom.opensearch.LocalNode key=value ...}, every argument a
 * node setting (path.home, http.port, ...). SIGTERM closes the node cleanly (flushes its shards).
 */
public final class LocalNode extends Node {

    private static final Collection<Class<? extends Plugin>> PLUGINS = List.of(Netty4Plugin.class, CommonAnalysisPlugin.class);

    private LocalNode(Environment environment) {
        super(environment, PLUGINS, true);
    }

    public static void main(String[] args) throws Exception {
        Settings.Builder builder = Settings.builder();
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("expected key=value, got: " + arg);
            }
            builder.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        Settings settings = builder.build();
        Path config = Path.of(settings.get("path.home")).resolve("config");
        Environment environment = InternalSettingsPreparer.prepareEnvironment(settings, Map.of(), config, () -> "local");
        LocalNode node = new LocalNode(environment);
        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(20, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                closed.countDown();
            }
        }, "local-node-shutdown"));
        node.start();
        System.out.println("LocalNode started: http " + settings.get("http.port"));
        closed.await();
    }
}
