#include "store/sql/sql_connection.h"

namespace quire::sql {

bool IsRetryable(const Status& st) {
  return st.code() == Code::kUnavailable && st.message().rfind(kRetryablePrefix, 0) == 0;
}

Status Statement::Run() {
  Status st;
  while (Step(&st)) {
  }
  return st;
}

Result<std::unique_ptr<Pool>> Pool::Open(const ConnectionFactory& connect, int size,
                                         bool serialize_writes) {
  auto pool = std::make_unique<Pool>();
  pool->serialize_writes_ = serialize_writes;
  for (int i = 0; i < size; ++i) {
    auto conn = connect();
    if (!conn.ok()) return conn.status();
    pool->free_.push_back(conn->get());
    pool->all_.push_back(std::move(conn).value());
  }
  return pool;
}

Result<Pool::Lease> Pool::Acquire() {
  Connection* c;
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !free_.empty(); });
    c = free_.back();
    free_.pop_back();
  }
  Lease lease(this, c);
  if (!c->Healthy()) QUIRE_RETURN_IF_ERROR(c->Reconnect());
  return lease;
}

Pool::Lease::~Lease() {
  if (conn_ == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(pool_->mu_);
    pool_->free_.push_back(conn_);
  }
  pool_->cv_.notify_one();
}

Transaction::Transaction(Pool& pool, TxKind kind) {
  if (kind != TxKind::kRead && pool.serialize_writes())
    write_lock_ = std::unique_lock<std::mutex>(pool.write_mutex());
  auto lease = pool.Acquire();
  if (!lease.ok()) {
    begin_ = lease.status();
    return;
  }
  lease_.emplace(std::move(lease).value());
  begin_ = conn().Begin(kind);
}

Transaction::~Transaction() {
  if (!done_ && lease_ && begin_.ok()) conn().Rollback();
}

Status Transaction::Commit() {
  Status st = conn().Commit();
  if (st.ok()) done_ = true;
  return st;
}

}  // namespace quire::sql
