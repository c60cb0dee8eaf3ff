#include "store/sqlite/schema.h"

namespace quire::sqlite {

const std::vector<std::string>& Migrations() {
  static const std::vector<std::string> kMigrations = {
      // 1: the whole first schema.
      R"SQL(
CREATE TABLE customers (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  display_name TEXT NOT NULL,
  administrator INTEGER NOT NULL DEFAULT 0,
  created INTEGER NOT NULL,
  -- Maintained with every batch insert / supersede, so batch listings need no COUNT(*).
  batch_count INTEGER NOT NULL DEFAULT 0,
  superseded_count INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE api_keys (
  key TEXT PRIMARY KEY,
  customer INTEGER NOT NULL REFERENCES customers(id),
  salt TEXT NOT NULL,
  secret_hash TEXT NOT NULL,
  created INTEGER NOT NULL
);
CREATE INDEX api_keys_customer ON api_keys(customer, created);
CREATE TABLE spaces (
  customer INTEGER NOT NULL REFERENCES customers(id),
  id INTEGER NOT NULL,
  name TEXT NOT NULL,
  created INTEGER NOT NULL,
  max_unauthorised INTEGER NOT NULL DEFAULT -1,
  default_tags TEXT NOT NULL DEFAULT '[]',
  default_roles TEXT NOT NULL DEFAULT '[]',
  -- Maintained with every asset insert / delete, so a space's listing needs no COUNT(*).
  image_count INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (customer, id),
  UNIQUE (customer, name)
);
CREATE TABLE assets (
  customer INTEGER NOT NULL,
  space INTEGER NOT NULL,
  id TEXT NOT NULL,
  origin TEXT NOT NULL,
  media_type TEXT NOT NULL,
  family TEXT NOT NULL,
  delivery_channels TEXT NOT NULL,
  tags TEXT NOT NULL DEFAULT '[]',
  roles TEXT NOT NULL DEFAULT '[]',
  string1 TEXT NOT NULL DEFAULT '',
  string2 TEXT NOT NULL DEFAULT '',
  string3 TEXT NOT NULL DEFAULT '',
  number1 INTEGER NOT NULL DEFAULT 0,
  number2 INTEGER NOT NULL DEFAULT 0,
  number3 INTEGER NOT NULL DEFAULT 0,
  max_unauthorised INTEGER NOT NULL DEFAULT -1,
  created INTEGER NOT NULL,
  finished INTEGER,
  ingesting INTEGER NOT NULL DEFAULT 0,
  error TEXT NOT NULL DEFAULT '',
  width INTEGER NOT NULL DEFAULT 0,
  height INTEGER NOT NULL DEFAULT 0,
  batch INTEGER,
  thumbnails TEXT NOT NULL DEFAULT '[]',
  PRIMARY KEY (customer, space, id),
  FOREIGN KEY (customer, space) REFERENCES spaces(customer, id)
);
CREATE INDEX assets_created ON assets(customer, space, created, id);
CREATE INDEX assets_batch ON assets(batch);
CREATE TABLE batches (
  id INTEGER PRIMARY KEY,
  customer INTEGER NOT NULL REFERENCES customers(id),
  submitted INTEGER NOT NULL,
  count INTEGER NOT NULL,
  completed INTEGER NOT NULL DEFAULT 0,
  errors INTEGER NOT NULL DEFAULT 0,
  finished INTEGER,
  superseded INTEGER NOT NULL DEFAULT 0,
  priority INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX batches_customer ON batches(customer, id);
CREATE INDEX batches_active ON batches(customer, finished, superseded, id);
CREATE TABLE batch_assets (
  batch INTEGER NOT NULL REFERENCES batches(id),
  customer INTEGER NOT NULL,
  space INTEGER NOT NULL,
  asset_id TEXT NOT NULL,
  ordinal INTEGER NOT NULL,
  state TEXT NOT NULL DEFAULT 'waiting' CHECK (state IN ('waiting', 'completed', 'error')),
  error TEXT NOT NULL DEFAULT '',
  finished INTEGER,
  PRIMARY KEY (batch, customer, space, asset_id)
);
CREATE INDEX batch_assets_order ON batch_assets(batch, ordinal);
CREATE INDEX batch_assets_state ON batch_assets(batch, state, ordinal);
CREATE TABLE jobs (
  id INTEGER PRIMARY KEY,
  customer INTEGER NOT NULL,
  space INTEGER NOT NULL,
  asset_id TEXT NOT NULL,
  batch INTEGER NOT NULL,
  priority INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'leased')),
  attempts INTEGER NOT NULL DEFAULT 0,
  -- When the job may run: its creation time, or the time of its next retry. Claims take the
  -- earliest ready job, so the claim index below finds it without scanning.
  next_attempt_at INTEGER NOT NULL DEFAULT 0,
  lease_owner TEXT,
  lease_until INTEGER,
  last_error TEXT NOT NULL DEFAULT '',
  created INTEGER NOT NULL
);
CREATE INDEX jobs_claim ON jobs(customer, priority, state, next_attempt_at, id);
CREATE INDEX jobs_lease ON jobs(state, lease_until);
CREATE INDEX jobs_asset ON jobs(customer, space, asset_id);
CREATE INDEX jobs_batch ON jobs(batch);
CREATE INDEX jobs_order ON jobs(customer, priority DESC, next_attempt_at, id);
-- Round-robin state: the customer served longest ago is served next.
CREATE TABLE queue_turns (
  customer INTEGER PRIMARY KEY,
  last_turn INTEGER NOT NULL DEFAULT 0
);
-- Recent ingest completions, for throughput (estCompletion). Trimmed to the last hour.
CREATE TABLE ingest_log (
  id INTEGER PRIMARY KEY,
  customer INTEGER NOT NULL,
  finished INTEGER NOT NULL,
  duration_ms INTEGER NOT NULL
);
CREATE INDEX ingest_log_customer ON ingest_log(customer, finished);
CREATE INDEX ingest_log_finished ON ingest_log(finished);
)SQL",
      // 2: the fencing token of a job's lease.
      "ALTER TABLE jobs ADD COLUMN fence INTEGER NOT NULL DEFAULT 0;",
      // 3: the latest wall-clock time a claim has seen, to notice the clock going back.
      "CREATE TABLE clock (id INTEGER PRIMARY KEY CHECK (id = 1), high_water INTEGER NOT NULL);"
      "INSERT INTO clock (id, high_water) VALUES (1, 0);",
      // 4: each customer's count of active (unfinished, not superseded) batches, kept by
      // triggers so that every path that finishes, supersedes or reopens a batch keeps it
      // exact; batch listings read it instead of counting a backlog of batches.
      R"SQL(
ALTER TABLE customers ADD COLUMN active_count INTEGER NOT NULL DEFAULT 0;
UPDATE customers SET active_count = (SELECT COUNT(*) FROM batches b WHERE b.customer =
  customers.id AND b.finished IS NULL AND b.superseded = 0);
CREATE TRIGGER batches_active_insert AFTER INSERT ON batches
  WHEN NEW.finished IS NULL AND NEW.superseded = 0
BEGIN
  UPDATE customers SET active_count = active_count + 1 WHERE id = NEW.customer;
END;
CREATE TRIGGER batches_active_update AFTER UPDATE OF finished, superseded ON batches
  WHEN (OLD.finished IS NULL AND OLD.superseded = 0) != (NEW.finished IS NULL AND NEW.superseded = 0)
BEGIN
  UPDATE customers SET active_count = active_count +
    (CASE WHEN NEW.finished IS NULL AND NEW.superseded = 0 THEN 1 ELSE -1 END)
    WHERE id = NEW.customer;
END;
)SQL",
      // 5: the batch of each logged outcome and the customer's jobs in flight when it was
      // recorded, for the pace of estCompletion.
      "ALTER TABLE ingest_log ADD COLUMN batch INTEGER NOT NULL DEFAULT 0;"
      "ALTER TABLE ingest_log ADD COLUMN busy INTEGER NOT NULL DEFAULT 1;"
      "CREATE INDEX ingest_log_batch ON ingest_log(batch, finished);",
      // 6: uploads (spec/platform.md §2) and the upload an asset's origin names.
      R"SQL(
CREATE TABLE uploads (
  customer BIGINT NOT NULL,
  id TEXT NOT NULL,
  media_type TEXT NOT NULL,
  size BIGINT NOT NULL,
  sha256 TEXT NOT NULL,
  created BIGINT NOT NULL,
  expires BIGINT NOT NULL,
  PRIMARY KEY (customer, id)
);
CREATE INDEX uploads_expires ON uploads(expires);
ALTER TABLE assets ADD COLUMN upload TEXT NOT NULL DEFAULT '';
CREATE INDEX assets_upload ON assets(customer, upload);
)SQL",
      // 7: the per-customer event log of image outcomes (live streams, Last-Event-ID), and
      // webhooks with their outbox of deliveries and the log of attempts.
      R"SQL(
CREATE TABLE event_counters (
  customer INTEGER PRIMARY KEY,
  seq INTEGER NOT NULL
);
CREATE TABLE events (
  customer INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  batch INTEGER,
  space INTEGER NOT NULL,
  asset_id TEXT NOT NULL,
  state TEXT NOT NULL,
  error TEXT NOT NULL DEFAULT '',
  at INTEGER NOT NULL,
  PRIMARY KEY (customer, seq)
);
CREATE INDEX events_batch ON events(customer, batch, seq);
CREATE INDEX events_at ON events(at);
CREATE TABLE webhooks (
  id INTEGER PRIMARY KEY,
  customer INTEGER NOT NULL,
  url TEXT NOT NULL,
  events TEXT NOT NULL,
  secret TEXT NOT NULL,
  created INTEGER NOT NULL
);
CREATE INDEX webhooks_customer ON webhooks(customer, id);
CREATE TABLE webhook_deliveries (
  id INTEGER PRIMARY KEY,
  webhook INTEGER NOT NULL,
  customer INTEGER NOT NULL,
  event_id TEXT NOT NULL,
  type TEXT NOT NULL,
  payload TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  lease_owner TEXT,
  lease_until INTEGER,
  fence INTEGER NOT NULL DEFAULT 0,
  last_status INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '',
  created INTEGER NOT NULL,
  delivered INTEGER
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(state, next_attempt_at);
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries(webhook, id);
CREATE TABLE webhook_attempts (
  delivery INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  at INTEGER NOT NULL,
  status INTEGER NOT NULL,
  error TEXT NOT NULL DEFAULT '',
  micros INTEGER NOT NULL,
  PRIMARY KEY (delivery, attempt)
);
)SQL",
      // 8: a leased job being converted (not only downloaded ahead): estCompletion's workers.
      "ALTER TABLE jobs ADD COLUMN converting INTEGER NOT NULL DEFAULT 0;",
      // 9: portal sessions (spec/platform.md §5): the cookie's token is kept only as a hash.
      R"SQL(
CREATE TABLE portal_sessions (
  token_hash TEXT PRIMARY KEY,
  customer INTEGER NOT NULL,
  admin INTEGER NOT NULL DEFAULT 0,
  api_key TEXT NOT NULL,
  csrf TEXT NOT NULL,
  created INTEGER NOT NULL,
  expires INTEGER NOT NULL
);
CREATE INDEX portal_sessions_expires ON portal_sessions(expires);
)SQL",
      // 10: storage usage and policies, origin strategies. Each asset's bytes (set
      // by its ingest outcome) are summed into its space by triggers, in the transaction of
      // the write, so usage never drifts; customers name their storage policy.
      R"SQL(
ALTER TABLE assets ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE assets ADD COLUMN thumbnail_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE spaces ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE spaces ADD COLUMN thumbnail_bytes INTEGER NOT NULL DEFAULT 0;
CREATE TRIGGER assets_bytes_update AFTER UPDATE OF stored_bytes, thumbnail_bytes ON assets
  WHEN OLD.stored_bytes != NEW.stored_bytes OR OLD.thumbnail_bytes != NEW.thumbnail_bytes
BEGIN
  UPDATE spaces SET stored_bytes = stored_bytes + NEW.stored_bytes - OLD.stored_bytes,
    thumbnail_bytes = thumbnail_bytes + NEW.thumbnail_bytes - OLD.thumbnail_bytes
    WHERE customer = NEW.customer AND id = NEW.space;
END;
CREATE TRIGGER assets_bytes_delete AFTER DELETE ON assets
  WHEN OLD.stored_bytes != 0 OR OLD.thumbnail_bytes != 0
BEGIN
  UPDATE spaces SET stored_bytes = stored_bytes - OLD.stored_bytes,
    thumbnail_bytes = thumbnail_bytes - OLD.thumbnail_bytes
    WHERE customer = OLD.customer AND id = OLD.space;
END;
CREATE TABLE storage_policies (
  id TEXT PRIMARY KEY,
  max_images INTEGER NOT NULL,
  max_bytes INTEGER NOT NULL
);
INSERT INTO storage_policies (id, max_images, max_bytes)
  VALUES ('default', 1000000000, 1000000000000000);
ALTER TABLE customers ADD COLUMN storage_policy TEXT NOT NULL DEFAULT 'default';
CREATE TABLE origin_strategies (
  customer INTEGER NOT NULL,
  id TEXT NOT NULL,
  regex TEXT NOT NULL,
  strategy TEXT NOT NULL,
  credentials TEXT NOT NULL DEFAULT '',
  optimised INTEGER NOT NULL DEFAULT 0,
  ordinal INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (customer, id)
);
CREATE TABLE delivery_channel_policies (
  customer INTEGER NOT NULL,
  channel TEXT NOT NULL,
  name TEXT NOT NULL,
  display_name TEXT NOT NULL DEFAULT '',
  policy_data TEXT NOT NULL,
  created INTEGER NOT NULL,
  modified INTEGER NOT NULL,
  PRIMARY KEY (customer, channel, name)
);
CREATE TABLE default_delivery_channels (
  customer INTEGER NOT NULL,
  space INTEGER NOT NULL,
  id TEXT NOT NULL,
  media_type TEXT NOT NULL,
  channel TEXT NOT NULL,
  policy TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (customer, id)
);
CREATE INDEX default_delivery_channels_space ON default_delivery_channels(customer, space);
CREATE TABLE custom_headers (
  customer INTEGER NOT NULL,
  id TEXT NOT NULL,
  space INTEGER NOT NULL DEFAULT 0,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (customer, id)
);
)SQL",
      // 11: named queries (spec/presentation-auth.md §3), the indexes that let a query's
      // equality criteria find their images without scanning the customer's collection, and
      // the roles of IIIF access control (§5.2).
      R"SQL(
CREATE TABLE named_queries (
  id TEXT PRIMARY KEY,
  customer INTEGER NOT NULL,
  name TEXT NOT NULL,
  is_global INTEGER NOT NULL DEFAULT 0,
  template_text TEXT NOT NULL,
  created INTEGER NOT NULL,
  UNIQUE (customer, name)
);
CREATE INDEX named_queries_global ON named_queries(is_global, name);
CREATE INDEX assets_string1 ON assets(customer, string1, space);
CREATE INDEX assets_string2 ON assets(customer, string2, space);
CREATE INDEX assets_string3 ON assets(customer, string3, space);
CREATE INDEX assets_number1 ON assets(customer, number1, space);
CREATE INDEX assets_number2 ON assets(customer, number2, space);
CREATE INDEX assets_number3 ON assets(customer, number3, space);
CREATE TABLE roles (
  customer INTEGER NOT NULL,
  name TEXT NOT NULL,
  label TEXT NOT NULL,
  heading TEXT NOT NULL DEFAULT '',
  note TEXT NOT NULL DEFAULT '',
  confirm_label TEXT NOT NULL DEFAULT '',
  logout_label TEXT NOT NULL DEFAULT '',
  provider TEXT NOT NULL DEFAULT 'clickthrough',
  session_ttl INTEGER NOT NULL DEFAULT 3600,
  created INTEGER NOT NULL,
  PRIMARY KEY (customer, name)
);
)SQL",
      // 12: access grants and auth sessions of IIIF Authorization 2.0 (§5.2, §5.3). Codes,
      // cookies and tokens are stored as hashes only.
      R"SQL(
CREATE TABLE auth_grants (
  id TEXT PRIMARY KEY,
  customer INTEGER NOT NULL,
  role TEXT NOT NULL,
  code_hash TEXT NOT NULL UNIQUE,
  label TEXT NOT NULL DEFAULT '',
  created INTEGER NOT NULL,
  expires INTEGER NOT NULL,
  max_uses INTEGER NOT NULL,
  uses INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX auth_grants_role ON auth_grants(customer, role, created);
CREATE TABLE auth_sessions (
  cookie_hash TEXT PRIMARY KEY,
  token_hash TEXT NOT NULL UNIQUE,
  customer INTEGER NOT NULL,
  created INTEGER NOT NULL
);
CREATE TABLE auth_session_roles (
  cookie_hash TEXT NOT NULL,
  role TEXT NOT NULL,
  expires INTEGER NOT NULL,
  grant_id TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (cookie_hash, role)
);
CREATE INDEX auth_session_roles_grant ON auth_session_roles(grant_id);
CREATE INDEX auth_session_roles_expires ON auth_session_roles(expires);
)SQL",
      // 13: the length of an audio or video asset in milliseconds (DLCS `duration`); 0 for
      // images and files.
      R"SQL(
ALTER TABLE assets ADD COLUMN duration INTEGER NOT NULL DEFAULT 0;
)SQL",
      // 14: a batch member whose image was deleted is marked, so that a batch's listing counts
      // its members from batch_assets alone instead of joining every member with assets
      // (members deleted before this migration are marked by it).
      R"SQL(
ALTER TABLE batch_assets ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
UPDATE batch_assets SET deleted = 1 WHERE NOT EXISTS (SELECT 1 FROM assets a WHERE
  a.customer = batch_assets.customer AND a.space = batch_assets.space AND a.id = batch_assets.asset_id);
)SQL",
      // 15: an image's batch memberships found by the image (a delete, and a batch that takes
      // an existing image over from an older one): without this index each was a scan of
      // every batch member of the installation.
      R"SQL(
CREATE INDEX batch_assets_asset ON batch_assets(customer, space, asset_id);
)SQL",
  };
  return kMigrations;
}

}  // namespace quire::sqlite
