-- EMAIL_STATE: one row per message (key MESSAGE_ID), from EMAIL_EVENTS (events.sql).
--
-- STATE is the highest-ranked delivery state seen, whatever order the events arrive in:
--   injected 1 < accepted 2 < queued 3 < attempt 4 < deferred 5 < delivered = bounced = expired = dropped 6
-- so a late "deferred" never overwrites "delivered"; between events of the same rank (two
-- deferrals; a bounce after a "delivered") the later one to arrive wins (MAX_BY's tie rule).
-- Engagement events (opened, clicked, complained, unsubscribed) have no rank: they never change
-- STATE, they set the flags OPENED, CLICKED, COMPLAINED, UNSUBSCRIBED.
--
-- BOUNCE_CLASS / BOUNCE_REASON are those of the event that set STATE when it is a deferral,
-- bounce, expiry or drop (NULL for delivered mail): the event's own bounce_class/bounce_reason,
-- else classified from its SMTP reply by the email UDFs BOUNCE_CLASS / BOUNCE_REASON
-- (mailroom.email.udfs, loaded by `mailroom run` through the "mailroom.functions" entry point).
-- LAST_SMTP_CODE / LAST_REPLY are those of the latest event (by event time) that carries an SMTP
-- code or reply; MTA that of the latest event naming one. ATTEMPTS counts delivered + deferred +
-- bounced events. The identity columns (RECIPIENT, DOMAIN, PROVIDER, CAMPAIGN_ID) are the latest
-- non-NULL values.
CREATE TABLE EMAIL_STATE AS
  SELECT MESSAGE_ID,
         MAX_BY(TYPE, CASE TYPE WHEN 'injected' THEN 1 WHEN 'accepted' THEN 2 WHEN 'queued' THEN 3
                                WHEN 'attempt' THEN 4 WHEN 'deferred' THEN 5 WHEN 'delivered' THEN 6
                                WHEN 'bounced' THEN 6 WHEN 'expired' THEN 6 WHEN 'dropped' THEN 6 END) AS STATE,
         LATEST_BY_OFFSET(RECIPIENT) AS RECIPIENT,
         LATEST_BY_OFFSET(DOMAIN) AS DOMAIN,
         LATEST_BY_OFFSET(PROVIDER) AS PROVIDER,
         LATEST_BY_OFFSET(CAMPAIGN_ID) AS CAMPAIGN_ID,
         MAX_BY(MTA, TS) AS MTA,
         SUM(CASE WHEN TYPE IN ('delivered', 'deferred', 'bounced') THEN 1 ELSE 0 END) AS ATTEMPTS,
         MIN(TS) AS FIRST_TS,
         MAX(TS) AS LAST_TS,
         MAX_BY(SMTP_CODE, CASE WHEN SMTP_CODE IS NOT NULL OR REPLY IS NOT NULL THEN TS END, FALSE) AS LAST_SMTP_CODE,
         MAX_BY(REPLY, CASE WHEN SMTP_CODE IS NOT NULL OR REPLY IS NOT NULL THEN TS END, FALSE) AS LAST_REPLY,
         MAX_BY(CASE WHEN TYPE IN ('deferred', 'bounced', 'expired', 'dropped')
                     THEN COALESCE(BOUNCE_CLASS, BOUNCE_CLASS(SMTP_CODE, ENHANCED_CODE, REPLY)) END,
                CASE TYPE WHEN 'injected' THEN 1 WHEN 'accepted' THEN 2 WHEN 'queued' THEN 3
                          WHEN 'attempt' THEN 4 WHEN 'deferred' THEN 5 WHEN 'delivered' THEN 6
                          WHEN 'bounced' THEN 6 WHEN 'expired' THEN 6 WHEN 'dropped' THEN 6 END, FALSE) AS BOUNCE_CLASS,
         MAX_BY(CASE WHEN TYPE IN ('deferred', 'bounced', 'expired', 'dropped')
                     THEN COALESCE(BOUNCE_REASON, BOUNCE_REASON(SMTP_CODE, ENHANCED_CODE, REPLY)) END,
                CASE TYPE WHEN 'injected' THEN 1 WHEN 'accepted' THEN 2 WHEN 'queued' THEN 3
                          WHEN 'attempt' THEN 4 WHEN 'deferred' THEN 5 WHEN 'delivered' THEN 6
                          WHEN 'bounced' THEN 6 WHEN 'expired' THEN 6 WHEN 'dropped' THEN 6 END, FALSE) AS BOUNCE_REASON,
         MAX(TYPE = 'opened') AS OPENED,
         MAX(TYPE = 'clicked') AS CLICKED,
         MAX(TYPE = 'complained') AS COMPLAINED,
         MAX(TYPE = 'unsubscribed') AS UNSUBSCRIBED,
         COUNT(*) AS EVENTS
  FROM EMAIL_EVENTS
  GROUP BY MESSAGE_ID
  EMIT CHANGES;
