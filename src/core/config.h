// Process configuration: every flag of `quire serve` / `quire worker`, filled by cli/ from
// flags and QUIRE_* environment variables (flag wins).
#pragma once

#include <cstdint>
#include <string>

namespace quire {

struct Config {
  std::string listen = "127.0.0.1:8080";
  std::string data_dir = "./var";
  std::string database;    // empty: sqlite:DATA/quire.db
  std::string storage;     // empty: file:DATA/blobs
  int db_pool = 0;         // database connections; 0: the backend's default
  int64_t db_statement_timeout_ms = 30000;  // PostgreSQL: longer statements fail (503)
  std::string node_id;     // names this process in leases and logs; empty: host:pid
  std::string public_url;  // empty: http://LISTEN
  int workers = -1;        // -1: number of cores
  std::string admin_key;
  std::string admin_secret;
  bool allow_private_origins = false;
  std::string origin_file_root;
  int max_batch_size = 250;
  int nq_max_items = 1000;  // a named-query manifest matching more images answers 400
  int pdf_wait_ms = 10000;  // how long a /pdf request waits for its build before 202
  int64_t max_body_bytes = 10 * 1024 * 1024;
  int64_t max_upload_bytes = 2LL << 30;  // POST /customers/{c}/uploads (413 beyond)
  double upload_ttl_hours = 72;          // an unused upload is removed after this
  int io_threads = -1;     // -1: number of cores
  int request_timeout_s = 30;
  std::string log_format = "text";  // text | json (one JSON object per line)
  int ingest_attempts = 5;         // tries per image before a transient failure is final
  int ingest_backoff_ms = 2000;    // first retry delay; doubles per attempt
  int lease_ms = 60000;            // job lease; heartbeated while long work runs
  int64_t max_pixels = 1000000000;
  // Audio/video (iiif-av): the longest recording accepted, in seconds, and the transcode's
  // wall clock as 2 min + this factor x the recording's duration.
  int64_t av_max_duration_s = 4 * 3600;
  double av_time_factor = 4.0;
  int64_t max_origin_bytes = 1LL << 30;
  int fetch_concurrency = 8;             // downloads run ahead of conversion, at most this many
  int fetch_connections = 32;            // connections to origins at once, ranges included
  int64_t fetch_range_bytes = 1 << 20;   // the first range of a download, and the least
  int64_t scratch_bytes = 4LL << 30;     // downloaded origins held at once (>= max_origin_bytes)
  int64_t min_free_bytes = 64LL << 20;  // ingest writes stop below this free on the data volume
  // The decode sandbox (media/decode_sandbox.h): which formats, and the child's limits.
  std::string decode_sandbox = "untrusted";  // untrusted | all
  int64_t decode_memory_bytes = 2LL << 30;
  int decode_cpu_seconds = 120;
  int64_t decode_timeout_ms = 300000;
  // PDF images (family I): pages rendered at this resolution, and at most this many pages.
  double pdf_dpi = 300;
  int pdf_max_pages = 2000;
  // JPEG sources: the full-resolution level cut from the coefficients (ingest/jpeg_dct.h),
  // holding at most this much coefficient memory across all workers; 0 = through pixels.
  int64_t jpeg_dct_memory = 160LL << 20;
  long origin_connect_timeout_ms = 10000;
  long origin_timeout_ms = 300000;
  long origin_low_speed_bytes = 1024;  // a download slower than this many bytes/s ...
  long origin_low_speed_time_s = 30;   // ... for this long is abandoned as stalled
  int cpu_queue = 64;               // renders and /file waiting for the CPU pool before 503
  int render_lane = 2;             // concurrent large renders before 503
  int64_t response_cache_bytes = 64 * 1024 * 1024;
  std::string cache_dir;                   // empty: DATA/cache (remote storage only)
  int64_t cache_bytes = 10LL << 30;        // bound of the delivery disk cache
  std::string origin_s3_buckets;           // s3:// origins allowed, comma-separated
  std::string origin_s3_endpoint;          // empty: the --storage S3 service, else AWS
  std::string secrets_key_file;            // seals origin-strategy credentials; empty: none
  int stream_heartbeat_ms = 15000;         // comment line on idle event streams
  int max_streams = 10000;                 // open event streams before 503
  int64_t webhook_backoff_ms = 5000;       // first webhook retry; doubles, capped at 1 h
  int64_t webhook_timeout_ms = 10000;      // per webhook request
  std::string portal_dir;                  // the portal's built files; empty: beside the binary
  double session_hours = 12;               // a portal sign-in lasts this long

  std::string DatabaseUrl() const;
  std::string StorageUrl() const;
  bool RemoteStorage() const;  // blobs not on a local filesystem (s3://)
  std::string CacheDir() const;
  std::string ScratchDir() const;  // local scratch for remote storage
  std::string PublicUrl() const;
  int EffectiveWorkers() const;
  int EffectiveIoThreads() const;
};

}  // namespace quire
