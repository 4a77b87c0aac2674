-- CAMPAIGN_STATS: per campaign (key CAMPAIGN_ID), message counts from EMAIL_STATE (email_state.sql),
-- so each message counts once and moves between the counts as its state changes:
--   SENT       messages of the campaign (every message with an event, dropped ones included)
--   DELIVERED / BOUNCED / DEFERRED   messages whose STATE is that now (DEFERRED: still waiting)
--   OPENED / CLICKED / COMPLAINED    messages with at least one such engagement event
-- Messages without a CAMPAIGN_ID are left out (a NULL group key).
CREATE TABLE CAMPAIGN_STATS AS
  SELECT CAMPAIGN_ID,
         COUNT(*) AS SENT,
         SUM(CASE WHEN STATE = 'delivered' THEN 1 ELSE 0 END) AS DELIVERED,
         SUM(CASE WHEN STATE = 'bounced' THEN 1 ELSE 0 END) AS BOUNCED,
         SUM(CASE WHEN STATE = 'deferred' THEN 1 ELSE 0 END) AS DEFERRED,
         SUM(CASE WHEN OPENED THEN 1 ELSE 0 END) AS OPENED,
         SUM(CASE WHEN CLICKED THEN 1 ELSE 0 END) AS CLICKED,
         SUM(CASE WHEN COMPLAINED THEN 1 ELSE 0 END) AS COMPLAINED
  FROM EMAIL_STATE
  GROUP BY CAMPAIGN_ID
  EMIT CHANGES;
