package bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.time.Duration;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.WindowStore;

/**
 * The Kafka Streams peer of bench/engine_bench.py: one of three workloads over the email events
 * topic (JSON values: id, domain, type, ts, ...; keyed by message id; record timestamp = event ts).
 *
 *   java -cp 'target/classes:target/dependency/*' bench.EngineBench BOOTSTRAP APP_ID INPUT OUTPUT WORKLOAD STATE_DIR
 *
 * WORKLOAD: count (events per recipient domain), window (per domain and type, delivered/deferred/
 * bounced, 1-minute tumbling windows by event time, 1 h grace), latest (the latest event per
 * message id). At-least-once, commit every second, one stream thread, RocksDB stores with
 * changelogs. Runs until SIGTERM (the harness watches the committed offsets), then closes.
 */
public final class EngineBench {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Set<String> TYPES = Set.of("delivered", "deferred", "bounced");

  private static JsonNode parse(String v) {
    try {
      return JSON.readTree(v);
    } catch (Exception e) {
      return null;
    }
  }

  public static void main(String[] args) throws Exception {
    String bootstrap = args[0], appId = args[1], input = args[2], output = args[3], workload = args[4], stateDir = args[5];
    StreamsBuilder b = new StreamsBuilder();
    KStream<String, String> events = b.stream(input, Consumed.with(Serdes.String(), Serdes.String()));
    switch (workload) {
      case "count" -> events
          .groupBy((k, v) -> parse(v).get("domain").asText(), Grouped.with("by-domain", Serdes.String(), Serdes.String()))
          .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("counts"))
          .toStream()
          .mapValues(n -> Long.toString(n))
          .to(output, Produced.with(Serdes.String(), Serdes.String()));
      case "window" -> events
          .mapValues(EngineBench::parse)
          .filter((k, j) -> j != null && TYPES.contains(j.get("type").asText()))
          .map((k, j) -> KeyValue.pair(j.get("domain").asText() + "|" + j.get("type").asText(), ""))
          .groupByKey(Grouped.with("by-domain-type", Serdes.String(), Serdes.String()))
          .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMinutes(1), Duration.ofHours(1)))
          .count(Materialized.<String, Long, WindowStore<Bytes, byte[]>>as("window-counts"))
          .toStream()
          .map((wk, n) -> KeyValue.pair(wk.key() + "@" + wk.window().start(), Long.toString(n)))
          .to(output, Produced.with(Serdes.String(), Serdes.String()));
      case "latest" -> events
          .groupByKey()
          .reduce((old, v) -> v, Materialized.<String, String, KeyValueStore<Bytes, byte[]>>as("latest"))
          .toStream()
          .to(output, Produced.with(Serdes.String(), Serdes.String()));
      default -> throw new IllegalArgumentException("unknown workload " + workload);
    }
    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
    p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 1000);
    p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
    p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
    p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
    p.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
    KafkaStreams streams = new KafkaStreams(b.build(), p);
    CountDownLatch done = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      streams.close(Duration.ofSeconds(30));
      done.countDown();
    }));
    streams.setUncaughtExceptionHandler(e -> {
      e.printStackTrace();
      return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
    });
    streams.start();
    System.out.println("started");
    done.await();
  }
}
