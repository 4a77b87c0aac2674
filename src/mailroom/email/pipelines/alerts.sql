-- ALERTS: provider deferral / block / bounce spikes (alerts.py) and stuck mail (stuck_mail.py).
-- A spike compares a 1-minute window with the healthy windows before it, which ksqlDB's SQL has no
-- way to say, so both writers are Python pipelines (`mailroom run ... alerts.py stuck_mail.py`);
-- this declares the stream they write for SQL readers.
CREATE STREAM IF NOT EXISTS ALERTS (
  ALERT_ID STRING KEY,
  KIND STRING,
  SUBJECT STRING,
  VALUE DOUBLE,
  BASELINE DOUBLE,
  WINDOW_START BIGINT,
  TS BIGINT,
  ATTEMPTS BIGINT,
  MESSAGE STRING
) WITH (kafka_topic='ALERTS', value_format='JSON', partitions=4, timestamp='TS');
