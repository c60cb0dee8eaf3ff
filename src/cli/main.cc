// The quire command: serve, worker, migrate, admin.
#include <malloc.h>
#include <signal.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>

#include "access/auth_service.h"
#include "api/context.h"
#include "api/entry.h"
#include "blob/blob_store.h"
#include "blob/cache/blob_cache.h"
#include "blob/migrate.h"
#include "blob/s3/s3_client.h"
#include "client/client.h"
#include "core/config.h"
#include "core/secret_box.h"
#include "core/secrets.h"
#include "core/time_util.h"
#include "core/vips_init.h"
#include "events/event_hub.h"
#include "events/webhook_sender.h"
#include "http/server.h"
#include "iiif/custom_headers.h"
#include "iiif/delivery.h"
#include "ingest/ingest_workers.h"
#include "ingest/upload_sweeper.h"
#include "media/decode_sandbox.h"
#include "ops/log_context.h"
#include "ops/metrics.h"
#include "portal/portal_files.h"
#include "presentation/presentation_service.h"
#include "store/store.h"

namespace quire {
namespace {

// Flags shared by serve and worker; each has a QUIRE_* environment variable.
void AddCommonFlags(CLI::App* app, Config* c) {
  app->add_option("--data", c->data_dir, "home of the embedded defaults (DIR/quire.db, DIR/blobs)")
      ->envname("QUIRE_DATA")
      ->capture_default_str();
  app->add_option("--database", c->database,
                  "sqlite:PATH (default sqlite:DATA/quire.db) or postgresql://user:pw@host:port/db")
      ->envname("QUIRE_DATABASE");
  app->add_option("--db-pool", c->db_pool,
                  "database connections (default: 8 on SQLite, 2 x cores on PostgreSQL)")
      ->envname("QUIRE_DB_POOL")
      ->check(CLI::Range(1, 1000));
  app->add_option("--db-statement-timeout-ms", c->db_statement_timeout_ms,
                  "PostgreSQL: a statement running longer fails with 503")
      ->envname("QUIRE_DB_STATEMENT_TIMEOUT_MS")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{100}, int64_t{3600000}));
  app->add_option("--node-id", c->node_id,
                  "name of this process in leases, logs and pg_stat_activity (default host:pid)")
      ->envname("QUIRE_NODE_ID");
  app->add_option("--storage", c->storage,
                  "file:PATH (default file:DATA/blobs) or s3://bucket/prefix?endpoint=URL&"
                  "region=R&path_style=1 (keys from QUIRE_S3_ACCESS_KEY/QUIRE_S3_SECRET_KEY)")
      ->envname("QUIRE_STORAGE");
  app->add_option("--log-format", c->log_format, "text, or json: one JSON object per line")
      ->envname("QUIRE_LOG_FORMAT")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
}

void AddIngestFlags(CLI::App* app, Config* c) {
  app->add_option("--workers", c->workers, "ingest threads in this process (default: cores)")
      ->envname("QUIRE_WORKERS");
  app->add_flag("--allow-private-origins", c->allow_private_origins,
                "allow origins on loopback/private/link-local addresses")
      ->envname("QUIRE_ALLOW_PRIVATE_ORIGINS");
  app->add_option("--origin-file-root", c->origin_file_root,
                  "allow file:// origins below this directory only")
      ->envname("QUIRE_ORIGIN_FILE_ROOT");
  app->add_option("--origin-s3-buckets", c->origin_s3_buckets,
                  "allow s3://bucket/key origins from these buckets (comma-separated), read "
                  "with the server's S3 credentials")
      ->envname("QUIRE_ORIGIN_S3_BUCKETS");
  app->add_option("--secrets-key-file", c->secrets_key_file,
                  "key (32 bytes, or 64 hex digits) that seals origin-strategy credentials "
                  "at rest; the same file on every node")
      ->envname("QUIRE_SECRETS_KEY_FILE");
  app->add_option("--origin-s3-endpoint", c->origin_s3_endpoint,
                  "S3 service of s3:// origins (default: the --storage one, else AWS)")
      ->envname("QUIRE_ORIGIN_S3_ENDPOINT");
  app->add_option("--ingest-attempts", c->ingest_attempts,
                  "tries per image before a transient failure is final")
      ->envname("QUIRE_INGEST_ATTEMPTS")
      ->capture_default_str();
  app->add_option("--ingest-backoff-ms", c->ingest_backoff_ms,
                  "delay before the first retry; doubles each time")
      ->envname("QUIRE_INGEST_BACKOFF_MS")
      ->capture_default_str();
  app->add_option("--lease-ms", c->lease_ms, "ingest job lease, heartbeated while work runs")
      ->envname("QUIRE_LEASE_MS")
      ->capture_default_str();
  app->add_option("--max-pixels", c->max_pixels, "largest image accepted, in pixels")
      ->envname("QUIRE_MAX_PIXELS")
      ->capture_default_str();
  app->add_option("--av-max-duration", c->av_max_duration_s,
                  "longest audio or video accepted on the iiif-av channel, in seconds; a "
                  "longer one fails before it is transcoded")
      ->envname("QUIRE_AV_MAX_DURATION")
      ->check(CLI::Range(int64_t{1}, int64_t{7} * 24 * 3600))
      ->capture_default_str();
  app->add_option("--av-time-factor", c->av_time_factor,
                  "a transcode is stopped after 2 minutes + this factor x the recording's "
                  "duration (wall clock)")
      ->envname("QUIRE_AV_TIME_FACTOR")
      ->check(CLI::Range(0.1, 1000.0))
      ->capture_default_str();
  app->add_option("--min-free-bytes", c->min_free_bytes,
                  "ingest stops writing (and retries later) while the volume holding the "
                  "blobs has less than this free, leaving room for the database")
      ->envname("QUIRE_MIN_FREE_BYTES")
      ->capture_default_str();
  app->add_option("--max-origin-bytes", c->max_origin_bytes, "largest origin download")
      ->envname("QUIRE_MAX_ORIGIN_BYTES")
      ->capture_default_str();
  app->add_option("--fetch-concurrency", c->fetch_concurrency,
                  "origin downloads run ahead of conversion: at most this many images claimed "
                  "and downloading or downloaded, so workers never wait on a slow origin")
      ->envname("QUIRE_FETCH_CONCURRENCY")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app->add_option("--fetch-connections", c->fetch_connections,
                  "connections to origins open at once over all downloads; an origin that "
                  "answers byte ranges is fetched over several (at most 8 per image), so a "
                  "per-connection rate limit costs little; at least --fetch-concurrency (each "
                  "download holds one; the rest are shared for ranges)")
      ->envname("QUIRE_FETCH_CONNECTIONS")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  app->add_option("--fetch-range-bytes", c->fetch_range_bytes,
                  "a download first asks for this many bytes; when the origin answers with a "
                  "range, the rest comes in ranges at least this large")
      ->envname("QUIRE_FETCH_RANGE_BYTES")
      ->check(CLI::Range(int64_t{4096}, int64_t{1} << 34))
      ->capture_default_str();
  app->add_option("--scratch-bytes", c->scratch_bytes,
                  "bytes of downloaded origins held at once; each download reserves the size "
                  "its origin declares first (at least --max-origin-bytes)")
      ->envname("QUIRE_SCRATCH_BYTES")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 50))
      ->capture_default_str();
  app->add_option("--decode-sandbox", c->decode_sandbox,
                  "formats decoded in a sandboxed child process: untrusted (JPEG 2000), or "
                  "all (every format, to measure what the sandbox costs)")
      ->envname("QUIRE_DECODE_SANDBOX")
      ->check(CLI::IsMember({"untrusted", "all"}))
      ->capture_default_str();
  app->add_option("--decode-memory-bytes", c->decode_memory_bytes,
                  "address space of a sandboxed decode (RLIMIT_AS); beyond it the image fails")
      ->envname("QUIRE_DECODE_MEMORY_BYTES")
      ->check(CLI::Range(int64_t{64} << 20, int64_t{1} << 44))
      ->capture_default_str();
  app->add_option("--decode-cpu-seconds", c->decode_cpu_seconds,
                  "CPU time of a sandboxed decode (RLIMIT_CPU)")
      ->envname("QUIRE_DECODE_CPU_SECONDS")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  app->add_option("--decode-timeout-ms", c->decode_timeout_ms,
                  "wall-clock time of a sandboxed decode, then it is killed")
      ->envname("QUIRE_DECODE_TIMEOUT_MS")
      ->check(CLI::Range(int64_t{100}, int64_t{86400000}))
      ->capture_default_str();
  app->add_option("--pdf-dpi", c->pdf_dpi,
                  "a PDF sent as an image is split into pages rendered at this resolution "
                  "(lower when a page would exceed --max-pixels)")
      ->envname("QUIRE_PDF_DPI")
      ->check(CLI::Range(10.0, 2400.0))
      ->capture_default_str();
  app->add_option("--pdf-max-pages", c->pdf_max_pages,
                  "a PDF with more pages fails whole instead of being split")
      ->envname("QUIRE_PDF_MAX_PAGES")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app->add_option("--jpeg-dct-memory", c->jpeg_dct_memory,
                  "JPEG sources get their full-resolution tiles cut losslessly from the DCT "
                  "coefficients (no decode and re-encode) while all workers together hold at "
                  "most this many bytes of coefficients; 0 makes every pyramid through pixels")
      ->envname("QUIRE_JPEG_DCT_MEMORY")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40))
      ->capture_default_str();
  app->add_option("--origin-connect-timeout-ms", c->origin_connect_timeout_ms,
                  "origin connect timeout")
      ->envname("QUIRE_ORIGIN_CONNECT_TIMEOUT_MS")
      ->capture_default_str();
  app->add_option("--origin-timeout-ms", c->origin_timeout_ms, "origin total download timeout")
      ->envname("QUIRE_ORIGIN_TIMEOUT_MS")
      ->capture_default_str();
  app->add_option("--origin-low-speed-bytes", c->origin_low_speed_bytes,
                  "a download slower than this many bytes/s ...")
      ->envname("QUIRE_ORIGIN_LOW_SPEED_BYTES")
      ->capture_default_str()
      ->check(CLI::Range(1L, 1L << 30));
  app->add_option("--origin-low-speed-time-s", c->origin_low_speed_time_s,
                  "... for this many seconds is abandoned as stalled")
      ->envname("QUIRE_ORIGIN_LOW_SPEED_TIME_S")
      ->capture_default_str()
      ->check(CLI::Range(1L, 3600L));
}

// Flags of every `quire client` command; each has its QUIRE_* environment variable.
void AddClientFlags(CLI::App* app, client::ClientOptions* o, bool* json) {
  o->endpoint.url = "http://127.0.0.1:8080";
  app->add_option("--url", o->endpoint.url, "the API's base URL")
      ->envname("QUIRE_URL")
      ->capture_default_str();
  app->add_option("--key", o->endpoint.key, "API key")->envname("QUIRE_KEY");
  app->add_option("--secret", o->endpoint.secret, "API secret")->envname("QUIRE_SECRET");
  app->add_option("--customer", o->customer,
                  "customer id or name (default: the key's own customer, from GET /)")
      ->envname("QUIRE_CUSTOMER");
  app->add_flag("--json", *json, "print one JSON object per line instead of bars");
  app->add_option("--retries", o->retries, "extra tries of a transient failure")
      ->capture_default_str()
      ->check(CLI::Range(0, 20));
}

// The command line as typed, with the secret masked, for "run it again to resume".
std::string MaskedCommandLine(int argc, char** argv) {
  std::string out;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (i > 0 && std::string(argv[i - 1]) == "--secret") a = "…";
    if (a.rfind("--secret=", 0) == 0) a = "--secret=…";
    bool quote = a.find_first_of(" \t'\"$") != std::string::npos;
    out += (out.empty() ? "" : " ") + (quote ? "'" + a + "'" : a);
  }
  return out;
}

Status PrepareDataDir(const Config& c) {
  std::error_code ec;
  std::filesystem::create_directories(c.data_dir, ec);
  if (ec) return Status::IOError("cannot create --data " + c.data_dir + ": " + ec.message());
  return Status::Ok();
}

Result<std::unique_ptr<Store>> OpenMigratedStore(const Config& c) {
  QUIRE_RETURN_IF_ERROR(PrepareDataDir(c));
  StoreOptions options;
  options.pool_size = c.db_pool;
  options.node_id = c.node_id;
  options.statement_timeout_ms = c.db_statement_timeout_ms;
  auto store = OpenStore(c.DatabaseUrl(), options);
  if (!store.ok()) return store.status();
  QUIRE_RETURN_IF_ERROR((*store)->Migrate());
  return store;
}

IngestSettings MakeIngestSettings(const Config& c) {
  IngestSettings s;
  s.workers = c.EffectiveWorkers();
  s.fetch_concurrency = c.fetch_concurrency;
  s.scratch_bytes = c.scratch_bytes;
  s.attempts = c.ingest_attempts;
  s.backoff_ms = c.ingest_backoff_ms;
  s.lease_ms = c.lease_ms;
  s.node_id = c.node_id;
  s.origin.allow_private_origins = c.allow_private_origins;
  s.origin.file_root = c.origin_file_root;
  s.origin.max_bytes = c.max_origin_bytes;
  // Each prefetcher has its own connection; the rest are shared for byte ranges.
  s.origin.connections = std::make_shared<FetchConnections>(
      std::max(0, c.fetch_connections - std::max(1, c.fetch_concurrency)));
  s.origin.range_bytes = c.fetch_range_bytes;
  s.origin.connect_timeout_ms = c.origin_connect_timeout_ms;
  s.origin.total_timeout_ms = c.origin_timeout_ms;
  s.origin.low_speed_bytes_per_s = c.origin_low_speed_bytes;
  s.origin.low_speed_time_s = c.origin_low_speed_time_s;
  s.process.max_pixels = c.max_pixels;
  s.process.dct_memory_budget = c.jpeg_dct_memory;
  media::ParseSandboxScope(c.decode_sandbox, &s.sandbox.scope);  // checked by the flag
  s.sandbox.memory_bytes = c.decode_memory_bytes;
  s.sandbox.cpu_seconds = c.decode_cpu_seconds;
  s.sandbox.timeout_ms = c.decode_timeout_ms;
  s.sandbox.pdf_dpi = c.pdf_dpi;
  s.pdf_max_pages = c.pdf_max_pages;
  s.av.max_duration_ms = c.av_max_duration_s * 1000;
  s.av.time_factor = c.av_time_factor;
  s.process.reserve_bytes = c.min_free_bytes;
  s.origin.reserve_bytes = c.min_free_bytes;
  for (size_t at = 0; at < c.origin_s3_buckets.size();) {
    size_t comma = c.origin_s3_buckets.find(',', at);
    if (comma == std::string::npos) comma = c.origin_s3_buckets.size();
    if (comma > at) s.origin.s3_buckets.push_back(c.origin_s3_buckets.substr(at, comma - at));
    at = comma + 1;
  }
  // s3 origins live on the storage's S3 service when the storage is S3, else on AWS.
  if (c.RemoteStorage()) {
    if (auto s3 = s3::ParseS3Url(c.StorageUrl()); s3.ok()) {
      s.origin.s3_endpoint = s3->scheme + "://" + s3->endpoint_host;
      s.origin.s3_region = s3->region;
      s.origin.s3_path_style = s3->path_style;
    }
  }
  if (!c.origin_s3_endpoint.empty()) s.origin.s3_endpoint = c.origin_s3_endpoint;
  return s;
}

// Each connection, download and open pyramid costs a descriptor; distributions start
// processes with a soft limit of 1024 and a far higher hard limit, so take the hard one.
// Returns the soft limit now in force.
rlim_t RaiseOpenFileLimit() {
  struct rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
  if (lim.rlim_cur < lim.rlim_max) {
    struct rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) return raised.rlim_cur;
  }
  return lim.rlim_cur;
}

int Fail(const Status& st) {
  spdlog::error("{}", st.message());
  return 1;
}

// Blocks until SIGTERM or SIGINT. Meanwhile, every 10 s, gives the memory freed since back to
// the system (malloc_trim): a burst of large buffers (renders, decodes, downloads) otherwise
// stays in the allocator's arenas, and the process's RSS would say little about what it holds.
void WaitForSignal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  const timespec period{10, 0};
  for (;;) {
    int sig = sigtimedwait(&set, nullptr, &period);
    if (sig == SIGTERM || sig == SIGINT) {
      spdlog::info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      return;
    }
    malloc_trim(0);
  }
}

// Flags that are only wrong together.
Status CheckIngestFlags(const Config& c) {
  if (c.scratch_bytes < c.max_origin_bytes)
    return Status::Invalid("--scratch-bytes (" + std::to_string(c.scratch_bytes) +
                           ") must be at least --max-origin-bytes (" +
                           std::to_string(c.max_origin_bytes) +
                           "), or the largest origin allowed could never be downloaded");
  if (c.fetch_connections < c.fetch_concurrency)
    return Status::Invalid("--fetch-connections (" + std::to_string(c.fetch_connections) +
                           ") must be at least --fetch-concurrency (" +
                           std::to_string(c.fetch_concurrency) +
                           "): every download in progress holds a connection");
  return Status::Ok();
}

// The key of --secrets-key-file, or null when none is configured.
Result<std::shared_ptr<const SecretBox>> OpenSecrets(const Config& c) {
  if (c.secrets_key_file.empty()) return std::shared_ptr<const SecretBox>();
  return SecretBox::FromKeyFile(c.secrets_key_file);
}

int Serve(Config c) {
  if (Status flags = CheckIngestFlags(c); !flags.ok()) return Fail(flags);
  auto secrets = OpenSecrets(c);
  if (!secrets.ok()) return Fail(secrets.status());
  auto store = OpenMigratedStore(c);
  if (!store.ok()) return Fail(store.status());
  auto blobs = OpenBlobStore(c.StorageUrl(), c.ScratchDir());
  if (!blobs.ok()) return Fail(blobs.status());
  if (!InitVips()) return Fail(Status::Internal("libvips failed to start"));
  std::unique_ptr<BlobCache> cache;
  if (c.RemoteStorage()) {
    auto opened = BlobCache::Open(**blobs, c.CacheDir(), c.cache_bytes);
    if (!opened.ok()) return Fail(opened.status());
    cache = std::move(*opened);
  }

  if (!c.admin_key.empty() || !c.admin_secret.empty()) {
    if (c.admin_key.empty() || c.admin_secret.empty())
      return Fail(Status::Invalid("--admin-key and --admin-secret go together"));
    if (!(*store)->GetCustomer(1).ok()) {
      auto made = api::CreateAdministrator(**store, c.admin_key, c.admin_secret);
      if (!made.ok()) return Fail(made.status());
      spdlog::info("seeded administrator customer 1 with key {}", c.admin_key);
    } else if (!(*store)->GetKey(c.admin_key).ok()) {
      ApiKey k;
      k.key = c.admin_key;
      k.customer = 1;
      k.salt = RandomHex(16);
      k.secret_hash = HashSecret(k.salt, c.admin_secret);
      Status st = (*store)->CreateKey(k);
      if (!st.ok()) return Fail(st);
      spdlog::info("added admin key {} to customer 1", c.admin_key);
    }
  }

  http::ServerOptions opts;
  Status st = http::ParseListen(c.listen, &opts.host, &opts.port);
  if (!st.ok()) return Fail(st);
  opts.io_threads = c.EffectiveIoThreads();
  opts.cpu_threads = c.EffectiveIoThreads();
  // On remote storage the CPU pool also waits on S3 for uncached tiles (delivery moves those
  // requests off the I/O threads): more threads keep cold requests from queueing.
  if (c.RemoteStorage()) opts.cpu_threads = std::max(opts.cpu_threads, 16);
  opts.max_body_bytes = static_cast<uint64_t>(c.max_body_bytes);
  opts.request_timeout_s = c.request_timeout_s;
  opts.max_cpu_queue = c.cpu_queue;
  opts.public_base = c.public_url;
  ops::Metrics metrics;
  opts.metrics = &metrics;

  // Block the signals before any thread starts so only WaitForSignal receives them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // The portal's files outlive the server that serves them.
  portal::PortalFiles portal_files;
  {
    std::string dir = c.portal_dir.empty() ? portal::PortalFiles::DefaultDir() : c.portal_dir;
    Status loaded = portal_files.Load(dir);
    if (!loaded.ok()) spdlog::warn("portal: {}; /portal/ answers 503", loaded.message());
  }
  http::Router router;
  http::Server server(router, opts);
  st = server.Start();
  if (!st.ok()) return Fail(st);
  if (c.public_url.empty())
    c.public_url = "http://" + opts.host + ":" + std::to_string(server.port());

  hydra::Urls urls(c.PublicUrl());
  iiif::DeliveryOptions delivery_opts;
  delivery_opts.large_render_lane = c.render_lane;
  delivery_opts.cache_bytes = c.response_cache_bytes;
  delivery_opts.metrics = &metrics;
  iiif::CustomHeaderCache custom_headers(**store);
  delivery_opts.custom_headers = [&custom_headers](int64_t c, int64_t s, http::Response* res) {
    custom_headers.Apply(c, s, res);
  };
  access::AccessControl access_control(**store, urls.base());
  delivery_opts.access = &access_control;
  iiif::Delivery delivery(**store, **blobs, urls.base(), delivery_opts, cache.get());
  presentation::PresentationService presentation(
      **store, **blobs, urls.base(),
      {.nq_max_items = c.nq_max_items,
       .pdf_wait = std::chrono::milliseconds(c.pdf_wait_ms),
       .access = &access_control});
  IngestSettings ingest = MakeIngestSettings(c);
  ingest.metrics = &metrics;
  ingest.secrets = *secrets;
  ingest.on_outcome = [&delivery, &presentation](const Job& job) {
    delivery.Invalidate(job.customer, job.space, job.asset_id);
    presentation.Invalidate(job.customer, job.space, job.asset_id);
  };
  IngestWorkers workers(**store, **blobs, ingest);
  api::Context ctx{**store, **blobs, c, urls};
  // On SQLite a batch read is an in-process read already, and a `quire worker` beside this
  // server would change batches without an event: no batch cache there.
  if ((*store)->EventsFromEveryProcess()) ctx.batches = std::make_shared<api::BatchCache>();
  ctx.metrics = &metrics;
  ctx.secrets = *secrets;
  events::EventHubOptions hub_options;
  hub_options.heartbeat_ms = c.stream_heartbeat_ms;
  hub_options.max_streams = c.max_streams;
  events::EventHub hub(**store, urls, hub_options);
  ctx.events = &hub;
  events::WebhookOptions webhook_options;
  webhook_options.backoff_ms = c.webhook_backoff_ms;
  webhook_options.timeout_ms = c.webhook_timeout_ms;
  webhook_options.allow_private = c.allow_private_origins;
  webhook_options.node_id = c.node_id;
  events::WebhookSender webhooks(**store, urls, webhook_options);
  // No ctx.work_queued: the store's kWorkQueued event (below) wakes the workers once, for
  // work queued through this node or any other.
  ctx.image_changed = [&delivery, &presentation](int64_t customer, int64_t space,
                                                 const std::string& id) {
    delivery.Invalidate(customer, space, id);
    presentation.Invalidate(customer, space, id);
  };
  // Changes committed by any node (PostgreSQL: NOTIFY) reach this node's caches and workers.
  (*store)->Subscribe([&workers, &delivery, &presentation, &hub, &webhooks, &access_control,
                       keys = ctx.keys, batches = ctx.batches](const StoreEvent& e) {
    switch (e.kind) {
      case StoreEvent::Kind::kWorkQueued:
        workers.Wake();
        if (batches) batches->Clear();  // a retry rescheduled: estimates may move
        break;
      case StoreEvent::Kind::kAssetChanged:
        if (batches) batches->ForgetCustomer(e.customer);
        delivery.Invalidate(e.customer, e.space, e.id);
        presentation.Invalidate(e.customer, e.space, e.id);
        break;
      case StoreEvent::Kind::kKeyDeleted:
        keys->Erase(e.id);
        break;
      // Missed events: keys, sessions and manifests are dropped now; delivery's asset
      // entries expire within 2 s;
      // streams read their logs again.
      case StoreEvent::Kind::kResync:
        keys->Clear();
        if (batches) batches->Clear();
        access_control.ForgetSessions(0, "");
        presentation.Clear();
        hub.OnStoreEvent(e);
        webhooks.Wake();
        break;
      case StoreEvent::Kind::kOutcomeRecorded:
        if (batches) batches->ForgetCustomer(e.customer);
        hub.OnStoreEvent(e);
        break;
      case StoreEvent::Kind::kWebhookQueued:
        webhooks.Wake();
        break;
      case StoreEvent::Kind::kAuthSessionsChanged:
        access_control.ForgetSessions(e.customer, e.id);
        break;
    }
  });
  api::RegisterApi(router, ctx);
  portal_files.Register(router);
  delivery.Register(router);
  presentation.Register(router);
  access::AuthService auth_service(**store, access_control, urls.base());
  auth_service.Register(router);
  workers.Start();
  // Expired uploads are looked for a few times per lifetime, at least once a minute.
  UploadSweeper sweeper(
      **store, **blobs,
      std::min<int64_t>(60000, static_cast<int64_t>(c.upload_ttl_hours * 3600e3 / 4)));
  sweeper.Start();
  hub.Start();
  webhooks.Start();
  spdlog::info(
      "quire listening on {}:{} (public URL {}, {} ingest workers, data {}, {} open "
      "files)",
      opts.host, server.port(), c.PublicUrl(), c.EffectiveWorkers(), c.data_dir,
      static_cast<uint64_t>(RaiseOpenFileLimit()));
  spdlog::default_logger()->flush();

  WaitForSignal();
  hub.Stop();  // ends the event streams, which would otherwise hold their connections
  server.Stop(10000);
  sweeper.Stop();
  (*store)->StopEvents();
  webhooks.Stop();
  workers.Stop();
  spdlog::info("stopped");
  return 0;
}

int Worker(Config c) {
  if (Status flags = CheckIngestFlags(c); !flags.ok()) return Fail(flags);
  auto secrets = OpenSecrets(c);
  if (!secrets.ok()) return Fail(secrets.status());
  auto store = OpenMigratedStore(c);
  if (!store.ok()) return Fail(store.status());
  auto blobs = OpenBlobStore(c.StorageUrl(), c.ScratchDir());
  if (!blobs.ok()) return Fail(blobs.status());
  if (!InitVips()) return Fail(Status::Internal("libvips failed to start"));
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  IngestSettings ingest = MakeIngestSettings(c);
  ingest.secrets = *secrets;
  IngestWorkers workers(**store, **blobs, ingest);
  // New work queued through any API node wakes the idle workers (PostgreSQL: LISTEN).
  (*store)->Subscribe([&workers](const StoreEvent& e) {
    if (e.kind == StoreEvent::Kind::kWorkQueued) workers.Wake();
  });
  workers.Start();
  spdlog::info("quire worker running {} ingest workers", c.EffectiveWorkers());
  WaitForSignal();
  (*store)->StopEvents();
  workers.Stop();
  return 0;
}

// `quire decode`: the decode sandbox's child (media/decode_sandbox.h), run by the server, not
// by people. Dispatched before anything else in main starts a thread or opens a file, and kept
// out of the main help.
int DecodeCommand(int argc, char** argv) {
  CLI::App app{"quire decode: decode one image in a sandbox into an intermediate TIFF (internal)"};
  media::DecodeRequest request;
  app.add_option("--in", request.in, "the source file")->required();
  app.add_option("--out", request.out, "the intermediate TIFF (an existing file, truncated)")
      ->required();
  app.add_option("--max-pixels", request.max_pixels, "refuse larger images (from the header)")
      ->capture_default_str();
  app.add_flag("--pdf-info", request.pdf_info, "a PDF: report its page count, write nothing");
  app.add_option("--page", request.page, "a PDF: render this page (1-based)");
  app.add_option("--dpi", request.dpi, "a PDF page's resolution")->capture_default_str();
  app.add_option("--test-fault", request.test_fault)->group("");  // tests of the sandbox
  try {
    app.parse(argc - 1, argv + 1);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return media::RunDecodeChild(request);
}

}  // namespace
}  // namespace quire

int main(int argc, char** argv) {
  using namespace quire;
  if (argc > 1 && std::string(argv[1]) == "decode") return DecodeCommand(argc, argv);
  RaiseOpenFileLimit();
  // The log goes to stderr through a buffered file sink: an access-log line costs a formatted
  // append under a mutex, not a write(2) (nor a queue hand-off with a thread wake-up, which
  // measured slower). Buffered lines reach stderr within a second, at once for warnings, and
  // whenever something important is logged (FlushLog).
  auto logger = spdlog::basic_logger_mt("quire", "/dev/stderr", /*truncate=*/false);
  spdlog::set_default_logger(logger);
  spdlog::flush_every(std::chrono::seconds(1));
  spdlog::flush_on(spdlog::level::warn);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);

  CLI::App app{"quire: a digital-library image platform (DLCS-compatible API, IIIF delivery)"};
  app.require_subcommand(1);
  Config c;

  CLI::App* serve = app.add_subcommand("serve", "HTTP API + IIIF delivery + ingest workers");
  serve->add_option("--listen", c.listen, "HOST:PORT to serve on")
      ->envname("QUIRE_LISTEN")
      ->capture_default_str();
  AddCommonFlags(serve, &c);
  AddIngestFlags(serve, &c);
  serve
      ->add_option("--public-url", c.public_url,
                   "base of every @id and IIIF id (default http://LISTEN)")
      ->envname("QUIRE_PUBLIC_URL");
  serve->add_option("--admin-key", c.admin_key, "seed administrator customer 1 with this key")
      ->envname("QUIRE_ADMIN_KEY");
  serve->add_option("--admin-secret", c.admin_secret, "secret for --admin-key")
      ->envname("QUIRE_ADMIN_SECRET");
  serve->add_option("--max-batch-size", c.max_batch_size, "largest accepted queue POST")
      ->envname("QUIRE_MAX_BATCH_SIZE")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  serve
      ->add_option("--nq-max-items", c.nq_max_items,
                   "most images a named-query manifest may hold (400 beyond)")
      ->envname("QUIRE_NQ_MAX_ITEMS")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  serve
      ->add_option("--pdf-wait-ms", c.pdf_wait_ms,
                   "how long a /pdf request waits for its build before answering 202")
      ->envname("QUIRE_PDF_WAIT_MS")
      ->capture_default_str()
      ->check(CLI::Range(0, 60000));
  serve->add_option("--max-body-bytes", c.max_body_bytes, "largest request body (413 beyond)")
      ->envname("QUIRE_MAX_BODY_BYTES")
      ->capture_default_str();
  serve
      ->add_option("--max-upload-bytes", c.max_upload_bytes,
                   "largest POST /customers/{c}/uploads body (413 beyond)")
      ->envname("QUIRE_MAX_UPLOAD_BYTES")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 50));
  serve
      ->add_option("--upload-ttl-hours", c.upload_ttl_hours,
                   "an upload no image uses is removed this long after it arrived")
      ->envname("QUIRE_UPLOAD_TTL_HOURS")
      ->capture_default_str()
      ->check(CLI::Range(0.0001, 1e6));
  serve->add_option("--io-threads", c.io_threads, "HTTP threads (default: cores)")
      ->envname("QUIRE_IO_THREADS");
  serve->add_option("--request-timeout", c.request_timeout_s, "seconds per request read/write")
      ->envname("QUIRE_REQUEST_TIMEOUT")
      ->capture_default_str();
  serve
      ->add_option("--cpu-queue", c.cpu_queue,
                   "renders and /file requests waiting for the CPU pool before 503")
      ->envname("QUIRE_CPU_QUEUE")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  serve->add_option("--render-lane", c.render_lane, "concurrent large IIIF renders before 503")
      ->envname("QUIRE_RENDER_LANE")
      ->capture_default_str();
  serve
      ->add_option("--response-cache-bytes", c.response_cache_bytes,
                   "memory for cached IIIF responses")
      ->envname("QUIRE_RESPONSE_CACHE_BYTES")
      ->capture_default_str();
  serve
      ->add_option("--stream-heartbeat-ms", c.stream_heartbeat_ms,
                   "comment line sent on idle event streams this often")
      ->envname("QUIRE_STREAM_HEARTBEAT_MS")
      ->capture_default_str()
      ->check(CLI::Range(100, 3600000));
  serve->add_option("--max-streams", c.max_streams, "open event streams before 503")
      ->envname("QUIRE_MAX_STREAMS")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  serve
      ->add_option("--webhook-backoff-ms", c.webhook_backoff_ms,
                   "first webhook retry after a failed delivery; doubles, capped at 1 h, "
                   "for 24 h")
      ->envname("QUIRE_WEBHOOK_BACKOFF_MS")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{10}, int64_t{3600000}));
  serve
      ->add_option("--webhook-timeout-ms", c.webhook_timeout_ms,
                   "a webhook receiver that has not answered by then fails the attempt")
      ->envname("QUIRE_WEBHOOK_TIMEOUT_MS")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{100}, int64_t{600000}));
  serve
      ->add_option("--portal-dir", c.portal_dir,
                   "the portal's files served at /portal/ (default: portal/ beside quire)")
      ->envname("QUIRE_PORTAL_DIR");
  serve->add_option("--session-hours", c.session_hours, "how long a portal sign-in lasts")
      ->envname("QUIRE_SESSION_HOURS")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 24.0 * 365));
  serve
      ->add_option("--cache-dir", c.cache_dir,
                   "local disk cache of remote (S3) blobs for delivery (default DATA/cache)")
      ->envname("QUIRE_CACHE_DIR");
  serve->add_option("--cache-bytes", c.cache_bytes, "bound of the --cache-dir cache (LRU)")
      ->envname("QUIRE_CACHE_BYTES")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(1) << 20, int64_t(1) << 50));

  CLI::App* worker = app.add_subcommand("worker", "ingest workers only (a back node)");
  AddCommonFlags(worker, &c);
  AddIngestFlags(worker, &c);

  CLI::App* migrate = app.add_subcommand("migrate", "create or upgrade the database schema");
  AddCommonFlags(migrate, &c);

  CLI::App* admin = app.add_subcommand("admin", "bootstrap customers and keys from the shell");
  admin->require_subcommand(1);
  std::string name, display;
  int64_t customer_id = 0;
  CLI::App* create_customer = admin->add_subcommand("create-customer", "create a customer");
  AddCommonFlags(create_customer, &c);
  create_customer->add_option("--name", name, "unique name ([A-Za-z0-9._-]+)")->required();
  create_customer->add_option("--display-name", display, "display name");
  CLI::App* create_key = admin->add_subcommand("create-key", "create an API key for a customer");
  AddCommonFlags(create_key, &c);
  create_key->add_option("--customer", customer_id, "customer id")->required();

  CLI::App* storage = app.add_subcommand("storage", "blob storage tools");
  storage->require_subcommand(1);
  std::string migrate_from, migrate_to;
  CLI::App* storage_migrate = storage->add_subcommand(
      "migrate", "copy every blob to another store (resumable: run again after an interruption)");
  storage_migrate->add_option("--data", c.data_dir, "home of the embedded defaults")
      ->envname("QUIRE_DATA")
      ->capture_default_str();
  storage_migrate->add_option("--from", migrate_from,
                              "source storage URL (default file:DATA/blobs)");
  storage_migrate->add_option("--to", migrate_to, "destination storage URL (s3://…)")->required();

  CLI::App* client_cmd = app.add_subcommand(
      "client", "talk to a Quire (or DLCS) over HTTP: submit files, watch and retry batches");
  client_cmd->require_subcommand(1);
  client::ClientOptions copts;
  bool client_json = false;
  std::string batch_url;
  CLI::App* submit = client_cmd->add_subcommand(
      "submit",
      "upload files and folders (recursively, images by content) or register a --csv of "
      "origins, in batches, with live progress; exit 0 when every image completed, 1 when some "
      "failed, 2 on usage or connection errors, 130 when interrupted");
  AddClientFlags(submit, &copts, &client_json);
  submit->add_option("--space", copts.space, "the space the images go to")->envname("QUIRE_SPACE");
  submit->add_option("paths", copts.paths, "files and folders to upload");
  submit->add_option("--csv", copts.csv,
                     "CSV with a header row: origin, id, space, mediaType, string1..3, "
                     "number1..3, tags, roles, deliveryChannels (';'-separated lists)");
  submit->add_option("--jobs", copts.jobs, "parallel uploads")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  submit->add_option("--limit-rate", copts.limit_rate, "bytes per second per upload (0: no limit)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  submit->add_flag("--priority", copts.priority, "use the priority queue");
  CLI::App* watch =
      client_cmd->add_subcommand("watch", "show a batch's progress until it finishes");
  AddClientFlags(watch, &copts, &client_json);
  watch->add_option("batch", batch_url, "the batch's URL")->required();
  CLI::App* retry =
      client_cmd->add_subcommand("retry", "re-queue a batch's failed images and watch");
  AddClientFlags(retry, &copts, &client_json);
  retry->add_option("batch", batch_url, "the batch's URL")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    // `quire client` promises 2 for usage errors (scripts tell them from failed images).
    bool client_usage = argc > 1 && std::string(argv[1]) == "client" && rc != 0;
    return client_usage ? 2 : rc;
  }
  if (client_cmd->parsed()) {
    copts.output = client_json ? client::OutputMode::kJson : client::OutputMode::kAuto;
    copts.command_line = MaskedCommandLine(argc, argv);
    spdlog::set_level(spdlog::level::warn);
    int rc = submit->parsed()  ? client::RunSubmit(copts)
             : watch->parsed() ? client::RunWatch(copts, batch_url)
                               : client::RunRetry(copts, batch_url);
    spdlog::shutdown();
    return rc;
  }
  if (c.log_format == "json")
    ops::UseJsonLogs();
  else if (!c.node_id.empty())
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ " + c.node_id + " %^%l%$ %v",
                        spdlog::pattern_time_type::utc);

  if (storage_migrate->parsed()) {
    auto from = OpenBlobStore(migrate_from.empty() ? c.StorageUrl() : migrate_from, c.ScratchDir());
    if (!from.ok()) return Fail(from.status());
    auto to = OpenBlobStore(migrate_to, c.ScratchDir());
    if (!to.ok()) return Fail(to.status());
    auto report = MigrateBlobs(**from, **to, [](const std::string& key, bool copied) {
      spdlog::info("{} {}", copied ? "copied" : "already there", key);
    });
    if (!report.ok()) return Fail(report.status());
    std::cout << "migrated: " << report->copied << " copied (" << report->bytes_copied
              << " bytes), " << report->skipped << " already there\n";
    spdlog::shutdown();
    return 0;
  }

  if (serve->parsed()) {
    int rc = Serve(c);
    spdlog::shutdown();
    return rc;
  }
  if (worker->parsed()) {
    int rc = Worker(c);
    spdlog::shutdown();
    return rc;
  }
  auto store = OpenMigratedStore(c);
  if (!store.ok()) return Fail(store.status());
  if (migrate->parsed()) {
    auto v = (*store)->SchemaVersion();
    std::cout << "schema at version " << (v.ok() ? *v : -1) << "\n";
    return 0;
  }
  if (create_customer->parsed()) {
    if (!IsValidCustomerName(name))
      return Fail(Status::Invalid("--name must be 1-100 of letters, digits, '.', '_', '-'"));
    Customer cu;
    cu.name = name;
    cu.display_name = display.empty() ? name : display;
    bool first = !(*store)->GetCustomer(1).ok();
    if (first) {
      cu.id = 1;  // the first customer is the administrator
      cu.administrator = true;
    }
    auto made = (*store)->CreateCustomer(cu);
    if (!made.ok()) return Fail(made.status());
    std::cout << "customer " << made->id << " (" << made->name << ")"
              << (made->administrator ? " administrator" : "") << "\n";
    return 0;
  }
  if (create_key->parsed()) {
    if (!(*store)->GetCustomer(customer_id).ok())
      return Fail(Status::NotFound("no customer " + std::to_string(customer_id)));
    ApiKey k;
    k.key = NewUuid();
    std::string secret = RandomHex(24);
    k.customer = customer_id;
    k.salt = RandomHex(16);
    k.secret_hash = HashSecret(k.salt, secret);
    Status st = (*store)->CreateKey(k);
    if (!st.ok()) return Fail(st);
    std::cout << "key    " << k.key << "\nsecret " << secret
              << "\n(the secret is shown only now)\n";
    return 0;
  }
  return 0;
}
