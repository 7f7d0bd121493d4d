-- Rate-limit counters when there is no Redis (the embedded store, or Postgres alone). The columns are
-- those rate-limiter-flexible's SQL stores use: points consumed, and when the window ends (epoch ms).
CREATE TABLE rate_limits (
  key    text   PRIMARY KEY,
  points bigint NOT NULL,
  expire bigint
);

CREATE INDEX rate_limits_expire ON rate_limits (expire);
