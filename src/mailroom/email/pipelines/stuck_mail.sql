-- STUCK_MAIL: messages with no final state a while after their last event.
-- SQL cannot say "nothing happened for 4 hours" (that takes a timer), so the rows are written by
-- the Python pipeline stuck_mail.py (run it with this file: `mailroom run ... stuck_mail.py`);
-- this declares the stream for SQL readers (the dashboard, pull and push queries).
CREATE STREAM IF NOT EXISTS STUCK_MAIL (
  MESSAGE_ID STRING KEY,
  STATE STRING,
  RECIPIENT STRING,
  DOMAIN STRING,
  PROVIDER STRING,
  LAST_TS BIGINT,
  AGE_MS BIGINT,
  DETECTED_TS BIGINT
) WITH (kafka_topic='STUCK_MAIL', value_format='JSON', partitions=4, timestamp='DETECTED_TS');
