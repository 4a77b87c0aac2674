-- Email tracking, headless: `mailroom run examples/email_state.sql`
-- Events of every email (accepted, delivered, deferred, bounced, ...), keyed by message id.
CREATE STREAM email_events (message_id STRING KEY, type STRING, domain STRING, mta STRING, ts BIGINT)
  WITH (kafka_topic='email-events', value_format='JSON', partitions=4, timestamp='ts');

-- Deliveries, deferrals and bounces per recipient domain.
CREATE TABLE domain_outcomes AS
  SELECT domain, COUNT(*) AS events,
         SUM(CASE WHEN type = 'delivered' THEN 1 ELSE 0 END) AS delivered,
         SUM(CASE WHEN type = 'bounced' THEN 1 ELSE 0 END) AS bounced,
         SUM(CASE WHEN type = 'deferred' THEN 1 ELSE 0 END) AS deferred
  FROM email_events GROUP BY domain EMIT CHANGES;

-- The latest state of every email.
CREATE TABLE email_state AS
  SELECT message_id, LATEST_BY_OFFSET(type) AS state, LATEST_BY_OFFSET(mta) AS mta, COUNT(*) AS events
  FROM email_events GROUP BY message_id EMIT CHANGES;
