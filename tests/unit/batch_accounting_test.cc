// The store contract, on every backend (SQLite and a real PostgreSQL): batch accounting
// (spec §6–§8): counts recomputed from rows,
// `finished` stamped exactly once, outcomes recorded at most once per held job, expired leases,
// round-robin fairness across customers, priority before default, /retry and /test semantics,
// estCompletion.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/time_util.h"
#include "store/store.h"
#include "support/store_fixture.h"

namespace quire {
namespace {

using test::TempDir;

// Parameter: the backend ("sqlite", "postgresql"); each test gets a new, empty database.
class BatchAccountingTest : public test::StoreContractTest {
 protected:
  void SetUp() override {
    StoreContractTest::SetUp();
    if (HasFatalFailure()) return;
    customer_a_ = MakeCustomer("alpha");
    customer_b_ = MakeCustomer("beta");
    space_a_ = MakeSpace(customer_a_, "a-space");
    space_b_ = MakeSpace(customer_b_, "b-space");
  }

  static Asset MakeAsset(int64_t customer, int64_t space, const std::string& id,
                         const std::string& media_type = "image/jpeg") {
    Asset a;
    a.customer = customer;
    a.space = space;
    a.id = id;
    a.origin = "https://example.org/" + id + ".jpg";
    a.media_type = media_type;
    a.family = FamilyForMediaType(media_type);
    a.delivery_channels = DefaultDeliveryChannels(media_type);
    return a;
  }

  Batch Submit(int64_t customer, int64_t space, const std::vector<std::string>& ids,
               bool priority = false) {
    std::vector<Asset> members;
    for (auto& id : ids) members.push_back(MakeAsset(customer, space, id));
    auto b = store_->CreateBatch(customer, members, priority);
    EXPECT_TRUE(b.ok()) << b.status().message();
    return b.ok() ? *b : Batch{};
  }

  std::vector<std::string> Ids(const std::string& prefix, int n) {
    std::vector<std::string> ids;
    for (int i = 0; i < n; ++i) ids.push_back(prefix + std::to_string(i));
    return ids;
  }

  Batch Get(int64_t customer, int64_t id) {
    auto b = store_->GetBatch(customer, id);
    EXPECT_TRUE(b.ok()) << b.status().message();
    return b.ok() ? *b : Batch{};
  }

  std::optional<Job> Claim(const std::string& owner, int64_t lease_ms = 60000) {
    auto j = store_->ClaimJob(owner, lease_ms);
    EXPECT_TRUE(j.ok()) << j.status().message();
    return j.ok() ? *j : std::nullopt;
  }

  static IngestOutcome Success(int64_t duration_ms = 50) {
    IngestOutcome o;
    o.success = true;
    o.width = 640;
    o.height = 480;
    o.duration_ms = duration_ms;
    return o;
  }
  static IngestOutcome Failure(const std::string& why = "origin returned HTTP 404") {
    IngestOutcome o;
    o.success = false;
    o.error = why;
    o.duration_ms = 20;
    return o;
  }

  // Claims every ready job and records `outcome_for(asset_id)` for each, in claim order.
  void DrainAll(const std::function<IngestOutcome(const Job&)>& outcome_for) {
    while (auto job = Claim("drainer")) {
      ASSERT_TRUE(store_->RecordOutcome(*job, outcome_for(*job)).ok());
    }
  }

  int64_t customer_a_ = 0, customer_b_ = 0, space_a_ = 0, space_b_ = 0;
};

// ------------------------------------------------------------------ concurrency

TEST_P(BatchAccountingTest, ConcurrentOutcomesNeverOvercountAndFinishOnce) {
  constexpr int kMembers = 200;
  constexpr int kWorkers = 6;
  Batch batch = Submit(customer_a_, space_a_, Ids("c", kMembers));
  ASSERT_EQ(batch.count, kMembers);
  // Which members fail is a function of the id, so the expected totals are known up front.
  auto fails = [](const std::string& id) { return std::stoi(id.substr(1)) % 7 == 3; };
  int expected_errors = 0;
  for (int i = 0; i < kMembers; ++i) expected_errors += fails("c" + std::to_string(i)) ? 1 : 0;

  std::atomic<bool> done{false};
  std::atomic<int> violations{0};
  std::atomic<int> reads{0};
  std::optional<int64_t> first_finished;
  std::mutex report_mu;
  std::vector<std::string> reports;
  auto report = [&](const std::string& what) {
    std::lock_guard<std::mutex> lock(report_mu);
    if (reports.size() < 20) reports.push_back(what);
    ++violations;
  };

  // Reader: at every moment completed + errors ≤ count, counts never go backwards, and once
  // `finished` appears it never changes and the counts are final.
  std::thread reader([&] {
    int64_t last_done = 0;
    while (!done.load()) {
      auto b = store_->GetBatch(customer_a_, batch.id);
      if (!b.ok()) {
        report("GetBatch: " + b.status().message());
        continue;
      }
      ++reads;
      int64_t sum = b->completed + b->errors;
      if (sum > b->count) report("completed + errors > count: " + std::to_string(sum));
      if (b->count != kMembers) report("count changed to " + std::to_string(b->count));
      if (sum < last_done) report("counts went backwards");
      last_done = sum;
      if (b->finished_ms) {
        if (!first_finished) first_finished = b->finished_ms;
        if (*first_finished != *b->finished_ms) report("finished changed");
        if (sum != kMembers) report("finished before every member was accounted");
      }
      auto q = store_->GetQueueCounts(customer_a_, false);
      if (q.ok() && (q->images_waiting < 0 || q->size < 0)) report("negative queue counts");
    }
  });

  // Workers: each claims a few jobs, then records their outcomes in a shuffled order, with
  // jitter, so outcomes land out of claim order and interleave across threads.
  std::vector<std::thread> workers;
  std::atomic<int> recorded{0}, conflicts{0}, failures{0};
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      std::mt19937 rng(1234 + w);
      std::string owner = "worker-" + std::to_string(w);
      while (true) {
        std::vector<Job> held;
        for (int k = 0; k < 3; ++k) {
          auto j = store_->ClaimJob(owner, 60000);
          if (!j.ok()) {
            ++failures;
            break;
          }
          if (!j->has_value()) break;
          held.push_back(**j);
        }
        if (held.empty()) return;
        std::shuffle(held.begin(), held.end(), rng);
        for (const Job& job : held) {
          std::this_thread::sleep_for(std::chrono::microseconds(rng() % 400));
          Status st = store_->RecordOutcome(job, fails(job.asset_id) ? Failure() : Success());
          if (st.ok())
            ++recorded;
          else if (st.code() == Code::kConflict)
            ++conflicts;
          else
            ++failures;
        }
      }
    });
  }
  for (auto& t : workers) t.join();
  done = true;
  reader.join();

  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(conflicts.load(), 0);
  EXPECT_EQ(recorded.load(), kMembers);
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(violations.load(), 0) << (reports.empty() ? "" : reports.front());

  Batch final = Get(customer_a_, batch.id);
  EXPECT_EQ(final.count, kMembers);
  EXPECT_EQ(final.errors, expected_errors);
  EXPECT_EQ(final.completed, kMembers - expected_errors);
  ASSERT_TRUE(final.finished_ms.has_value());
  if (first_finished) {
    EXPECT_EQ(*first_finished, *final.finished_ms);
  }
  EXPECT_GE(*final.finished_ms, final.submitted_ms);
  EXPECT_FALSE(final.superseded);

  // The lists agree with the counts.
  auto completed = store_->ListBatchAssets(customer_a_, batch.id, BatchMemberFilter::kCompleted,
                                           PageRequest{1, 500});
  auto errors = store_->ListBatchAssets(customer_a_, batch.id, BatchMemberFilter::kError,
                                        PageRequest{1, 500});
  ASSERT_TRUE(completed.ok() && errors.ok());
  EXPECT_EQ(completed->total, final.completed);
  EXPECT_EQ(errors->total, final.errors);
  for (auto& a : errors->items) EXPECT_EQ(a.error, "origin returned HTTP 404");
  for (auto& a : completed->items) {
    EXPECT_FALSE(a.ingesting);
    EXPECT_EQ(a.error, "");
    EXPECT_EQ(a.width, 640);
  }
  auto q = store_->GetQueueCounts(customer_a_, false);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->size, 0);
  EXPECT_EQ(q->batches_waiting, 0);
  EXPECT_EQ(q->images_waiting, 0);

  // `finished` never changes afterwards, whatever else happens to the members.
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  Submit(customer_a_, space_a_, {"c1", "c2"});  // two members move on to a newer batch
  ASSERT_TRUE(store_->TestBatch(customer_a_, batch.id).ok());
  Batch later = Get(customer_a_, batch.id);
  ASSERT_TRUE(later.finished_ms.has_value());
  EXPECT_EQ(*later.finished_ms, *final.finished_ms);
  EXPECT_EQ(later.completed + later.errors, later.count);
}

TEST_P(BatchAccountingTest, OutcomesInReverseOrderGiveExactCounts) {
  Batch batch = Submit(customer_a_, space_a_, Ids("r", 12));
  std::vector<Job> held;
  while (auto j = Claim("w")) held.push_back(*j);
  ASSERT_EQ(held.size(), 12u);
  std::reverse(held.begin(), held.end());
  for (size_t i = 0; i < held.size(); ++i) {
    ASSERT_TRUE(store_->RecordOutcome(held[i], i % 4 == 0 ? Failure() : Success()).ok());
    Batch b = Get(customer_a_, batch.id);
    EXPECT_EQ(b.completed + b.errors, static_cast<int64_t>(i + 1));
    EXPECT_EQ(b.finished_ms.has_value(), i + 1 == held.size());
  }
  Batch b = Get(customer_a_, batch.id);
  EXPECT_EQ(b.errors, 3);
  EXPECT_EQ(b.completed, 9);
}

// ------------------------------------------------------------------ at most once

TEST_P(BatchAccountingTest, RecordingTheSameOutcomeTwiceChangesNothing) {
  Batch batch = Submit(customer_a_, space_a_, {"once", "twice"});
  auto job = Claim("w");
  ASSERT_TRUE(job);
  ASSERT_TRUE(store_->RecordOutcome(*job, Success()).ok());
  Batch after_first = Get(customer_a_, batch.id);
  EXPECT_EQ(after_first.completed, 1);
  EXPECT_EQ(after_first.errors, 0);
  auto asset = store_->GetAsset(customer_a_, space_a_, job->asset_id);
  ASSERT_TRUE(asset.ok());

  Status again = store_->RecordOutcome(*job, Success());
  EXPECT_EQ(again.code(), Code::kConflict) << again.message();
  Status flipped = store_->RecordOutcome(*job, Failure());
  EXPECT_EQ(flipped.code(), Code::kConflict) << flipped.message();

  Batch after_second = Get(customer_a_, batch.id);
  EXPECT_EQ(after_second.completed, 1);
  EXPECT_EQ(after_second.errors, 0);
  EXPECT_FALSE(after_second.finished_ms.has_value());
  auto asset2 = store_->GetAsset(customer_a_, space_a_, job->asset_id);
  ASSERT_TRUE(asset2.ok());
  EXPECT_EQ(asset2->error, "");
  EXPECT_EQ(asset2->finished_ms, asset->finished_ms);

  // The other member finishes the batch exactly once.
  auto other = Claim("w");
  ASSERT_TRUE(other);
  ASSERT_TRUE(store_->RecordOutcome(*other, Failure()).ok());
  Batch done = Get(customer_a_, batch.id);
  EXPECT_EQ(done.completed, 1);
  EXPECT_EQ(done.errors, 1);
  ASSERT_TRUE(done.finished_ms);
  EXPECT_EQ(store_->RecordOutcome(*other, Success()).code(), Code::kConflict);
  Batch still = Get(customer_a_, batch.id);
  EXPECT_EQ(still.completed, 1);
  EXPECT_EQ(still.errors, 1);
  EXPECT_EQ(still.finished_ms, done.finished_ms);
}

TEST_P(BatchAccountingTest, ExpiredLeaseIsClaimedByAnotherOwnerAndTheFirstIsRejected) {
  Batch batch = Submit(customer_a_, space_a_, {"lease"});
  auto first = Claim("slow-worker", /*lease_ms=*/1);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->attempts, 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto second = Claim("fast-worker", 60000);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->id, first->id);
  EXPECT_EQ(second->lease_owner, "fast-worker");
  EXPECT_EQ(second->attempts, 2);

  EXPECT_EQ(store_->ExtendLease(*first, 60000).code(), Code::kNotFound);
  EXPECT_EQ(store_->StartConverting(*first, 60000).code(), Code::kNotFound);
  EXPECT_TRUE(store_->StartConverting(*second, 60000).ok());
  Status late = store_->RecordOutcome(*first, Failure("late"));
  EXPECT_EQ(late.code(), Code::kConflict) << late.message();
  Batch mid = Get(customer_a_, batch.id);
  EXPECT_EQ(mid.completed + mid.errors, 0);
  EXPECT_FALSE(mid.finished_ms);

  ASSERT_TRUE(store_->RecordOutcome(*second, Success()).ok());
  Batch b = Get(customer_a_, batch.id);
  EXPECT_EQ(b.completed, 1);
  EXPECT_EQ(b.errors, 0);
  EXPECT_TRUE(b.finished_ms);
  auto asset = store_->GetAsset(customer_a_, space_a_, "lease");
  ASSERT_TRUE(asset.ok());
  EXPECT_EQ(asset->error, "");
  EXPECT_FALSE(asset->ingesting);
  EXPECT_FALSE(Claim("anyone").has_value());
}

// ------------------------------------------------------------------ scheduling

TEST_P(BatchAccountingTest, RoundRobinServesALaterSmallCustomerEarly) {
  Submit(customer_a_, space_a_, Ids("a", 50));
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  Submit(customer_b_, space_b_, Ids("b", 5));
  int b_claimed = 0;
  for (int i = 0; i < 10; ++i) {
    auto j = Claim("w");
    ASSERT_TRUE(j);
    if (j->customer == customer_b_) ++b_claimed;
  }
  EXPECT_EQ(b_claimed, 5);
}

TEST_P(BatchAccountingTest, RoundRobinAfterTheFirstCustomerHasAlreadyBeenServed) {
  Submit(customer_a_, space_a_, Ids("a", 50));
  for (int i = 0; i < 10; ++i) {
    auto j = Claim("w");
    ASSERT_TRUE(j);
    ASSERT_TRUE(store_->RecordOutcome(*j, Success()).ok());
  }
  Submit(customer_b_, space_b_, Ids("b", 5));
  std::vector<int64_t> order;
  for (int i = 0; i < 10; ++i) {
    auto j = Claim("w");
    ASSERT_TRUE(j);
    order.push_back(j->customer);
  }
  EXPECT_EQ(std::count(order.begin(), order.end(), customer_b_), 5);
  EXPECT_EQ(order.front(), customer_b_);  // served longest ago (never) goes first
}

TEST_P(BatchAccountingTest, PriorityJobsAreClaimedBeforeDefaultOnes) {
  Submit(customer_a_, space_a_, Ids("d", 5));
  Submit(customer_b_, space_b_, Ids("e", 5));
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  Batch prio = Submit(customer_a_, space_a_, Ids("p", 3), /*priority=*/true);
  EXPECT_TRUE(prio.priority);
  auto counts = store_->GetQueueCounts(customer_a_, true);
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->size, 3);
  auto global = store_->GetGlobalQueueCounts();
  ASSERT_TRUE(global.ok());
  EXPECT_EQ(global->priority, 3);
  EXPECT_EQ(global->incoming, 10);
  for (int i = 0; i < 3; ++i) {
    auto j = Claim("w");
    ASSERT_TRUE(j);
    EXPECT_TRUE(j->priority);
    EXPECT_EQ(j->batch, prio.id);
  }
  auto next = Claim("w");
  ASSERT_TRUE(next);
  EXPECT_FALSE(next->priority);
  // The queued-images listing shows the processing order: priority first.
  Submit(customer_a_, space_a_, {"p-late"}, true);
  auto queued = store_->ListQueuedAssets(customer_a_, PageRequest{1, 100});
  ASSERT_TRUE(queued.ok());
  auto pos = [&](const std::string& id) {
    for (size_t i = 0; i < queued->items.size(); ++i)
      if (queued->items[i].id == id) return static_cast<int>(i);
    return -1;
  };
  ASSERT_GE(pos("p-late"), 0);
  ASSERT_GE(pos("d1"), 0);
  EXPECT_LT(pos("p-late"), pos("d1"));  // waiting priority work is ahead of waiting default
}

// ------------------------------------------------------------------ retry

TEST_P(BatchAccountingTest, RetryRequeuesErrorRowsAndReopensTheBatch) {
  Batch batch = Submit(customer_a_, space_a_, {"ok", "bad1", "bad2"});
  DrainAll([](const Job& j) {
    return j.asset_id == "ok" ? Success() : Failure("not a decodable image");
  });
  Batch done = Get(customer_a_, batch.id);
  EXPECT_EQ(done.completed, 1);
  EXPECT_EQ(done.errors, 2);
  ASSERT_TRUE(done.finished_ms);

  auto retried = store_->RetryBatch(customer_a_, batch.id);
  ASSERT_TRUE(retried.ok()) << retried.status().message();
  EXPECT_EQ(retried->count, 3);
  EXPECT_EQ(retried->completed, 1);
  EXPECT_EQ(retried->errors, 0);
  EXPECT_FALSE(retried->finished_ms.has_value());
  for (const char* id : {"bad1", "bad2"}) {
    auto a = store_->GetAsset(customer_a_, space_a_, id);
    ASSERT_TRUE(a.ok());
    EXPECT_TRUE(a->ingesting) << id;
    EXPECT_EQ(a->error, "") << id;
    EXPECT_EQ(a->batch, batch.id);
  }
  auto ok_asset = store_->GetAsset(customer_a_, space_a_, "ok");
  ASSERT_TRUE(ok_asset.ok());
  EXPECT_FALSE(ok_asset->ingesting);
  auto q = store_->GetQueueCounts(customer_a_, false);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->size, 2);
  EXPECT_EQ(q->batches_waiting, 1);
  EXPECT_EQ(q->images_waiting, 2);
  auto errors = store_->ListBatchAssets(customer_a_, batch.id, BatchMemberFilter::kError,
                                        PageRequest{1, 100});
  ASSERT_TRUE(errors.ok());
  EXPECT_EQ(errors->total, 0);

  // A retry with nothing in error changes nothing.
  auto again = store_->RetryBatch(customer_a_, batch.id);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(store_->GetQueueCounts(customer_a_, false)->size, 2);

  std::set<std::string> claimed;
  while (auto j = Claim("w")) {
    EXPECT_EQ(j->batch, batch.id);
    claimed.insert(j->asset_id);
    ASSERT_TRUE(store_->RecordOutcome(*j, Success()).ok());
  }
  EXPECT_EQ(claimed, (std::set<std::string>{"bad1", "bad2"}));
  Batch after = Get(customer_a_, batch.id);
  EXPECT_EQ(after.completed, 3);
  EXPECT_EQ(after.errors, 0);
  ASSERT_TRUE(after.finished_ms);
  EXPECT_GE(*after.finished_ms, *done.finished_ms);

  // Retry leaves alone an error member that moved on to a newer batch.
  Batch b2 = Submit(customer_a_, space_a_, {"x1", "x2"});
  DrainAll([](const Job&) { return Failure(); });
  Batch b3 = Submit(customer_a_, space_a_, {"x1"});
  auto r2 = store_->RetryBatch(customer_a_, b2.id);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->errors, 1);  // x1 stays an error of b2; only x2 is retried
  EXPECT_EQ(store_->GetQueueCounts(customer_a_, false)->size, 2);  // x1 (b3) and x2 (b2)
  auto x1 = store_->GetAsset(customer_a_, space_a_, "x1");
  ASSERT_TRUE(x1.ok());
  EXPECT_EQ(x1->batch, b3.id);

  EXPECT_EQ(store_->RetryBatch(customer_b_, batch.id).status().code(), Code::kNotFound);
  EXPECT_EQ(store_->RetryBatch(customer_a_, 999999).status().code(), Code::kNotFound);
}

// ------------------------------------------------------------------ estCompletion

TEST_P(BatchAccountingTest, EstCompletionFromThroughputThenEqualsFinished) {
  Batch batch = Submit(customer_a_, space_a_, Ids("t", 10));
  EXPECT_FALSE(batch.finished_ms);
  for (int i = 0; i < 3; ++i) {
    auto j = Claim("w");
    ASSERT_TRUE(j);
    ASSERT_TRUE(store_->RecordOutcome(*j, Success(200)).ok());
  }
  int64_t before = NowMs();
  Batch mid = Get(customer_a_, batch.id);
  EXPECT_FALSE(mid.finished_ms);
  ASSERT_TRUE(mid.est_completion_ms.has_value());
  EXPECT_GE(*mid.est_completion_ms, before - 1000);
  BatchQuery all;
  all.customer = customer_a_;
  auto listed = store_->ListBatches(all);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->items.size(), 1u);
  EXPECT_TRUE(listed->items[0].est_completion_ms.has_value());

  DrainAll([](const Job&) { return Success(200); });
  Batch done = Get(customer_a_, batch.id);
  ASSERT_TRUE(done.finished_ms);
  ASSERT_TRUE(done.est_completion_ms);
  EXPECT_EQ(*done.est_completion_ms, *done.finished_ms);
}

TEST_P(BatchAccountingTest, NoEstimateWithoutAnyMeasurement) {
  Batch batch = Submit(customer_a_, space_a_, Ids("n", 3));
  EXPECT_FALSE(Get(customer_a_, batch.id).est_completion_ms.has_value());
}

// ------------------------------------------------------------------ supersede and /test

TEST_P(BatchAccountingTest, SupersededOnceEveryMemberMovedToANewerBatch) {
  Batch old_batch = Submit(customer_a_, space_a_, {"m1", "m2"});
  Submit(customer_a_, space_a_, {"m1"});
  Batch partly = Get(customer_a_, old_batch.id);
  EXPECT_FALSE(partly.superseded);
  EXPECT_EQ(partly.errors, 1);  // m1 left before it was processed
  EXPECT_FALSE(partly.finished_ms);
  Batch newest = Submit(customer_a_, space_a_, {"m2"});
  Batch gone = Get(customer_a_, old_batch.id);
  EXPECT_TRUE(gone.superseded);
  EXPECT_EQ(gone.completed + gone.errors, gone.count);
  EXPECT_TRUE(gone.finished_ms);
  // /test: nothing points at it, it is already superseded — nothing changes.
  auto t = store_->TestBatch(customer_a_, old_batch.id);
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(*t);
  EXPECT_TRUE(Get(customer_a_, old_batch.id).superseded);
  // Not listed as active or recent any more.
  BatchQuery active;
  active.customer = customer_a_;
  active.filter = BatchListFilter::kActive;
  auto list = store_->ListBatches(active);
  ASSERT_TRUE(list.ok());
  for (auto& b : list->items) EXPECT_NE(b.id, old_batch.id);
  EXPECT_FALSE(Get(customer_a_, newest.id).superseded);
}

// The listing totals come from counters kept by triggers; they must equal what the rows say
// after every kind of transition: submit, finish, supersede, retry (reopen), /test.
TEST_P(BatchAccountingTest, ListingTotalsEqualTheRowsThroughEveryTransition) {
  auto check = [&](const char* step) {
    BatchQuery all;
    all.customer = customer_a_;
    all.page.page_size = 1000;
    auto every = store_->ListBatches(all);
    ASSERT_TRUE(every.ok()) << step;
    int64_t active = 0, recent = 0;
    for (const Batch& b : every->items) {
      if (!b.superseded && !b.finished_ms) ++active;
      if (!b.superseded && b.finished_ms) ++recent;
    }
    EXPECT_EQ(every->total, static_cast<int64_t>(every->items.size())) << step;
    for (auto [filter, want] : {std::pair{BatchListFilter::kActive, active},
                                std::pair{BatchListFilter::kRecent, recent}}) {
      BatchQuery q = all;
      q.filter = filter;
      auto list = store_->ListBatches(q);
      ASSERT_TRUE(list.ok()) << step;
      EXPECT_EQ(list->total, want) << step << ": filter " << static_cast<int>(filter);
      EXPECT_EQ(static_cast<int64_t>(list->items.size()), want) << step;
    }
  };
  check("empty");
  Batch b1 = Submit(customer_a_, space_a_, {"t1", "t2", "t3"});
  Batch b2 = Submit(customer_a_, space_a_, {"t4"});
  check("submitted");
  DrainAll([](const Job& j) { return j.asset_id == "t2" ? Failure() : Success(); });
  check("finished");
  ASSERT_TRUE(store_->RetryBatch(customer_a_, b1.id).ok());
  check("reopened by retry");
  DrainAll([](const Job&) { return Success(); });
  check("finished again");
  Submit(customer_a_, space_a_, {"t4"});  // b2's only member moves: b2 is superseded
  EXPECT_TRUE(Get(customer_a_, b2.id).superseded);
  check("superseded");
  Submit(customer_a_, space_a_, {"t1", "t5"});  // b1 loses a member before nothing
  ASSERT_TRUE(store_->TestBatch(customer_a_, b1.id).ok());
  check("tested");
  DrainAll([](const Job&) { return Success(); });
  check("all done");
}

TEST_P(BatchAccountingTest, TestResetsCountsOfAFinishedBatchWithAnError) {
  // c leaves batch 1 before it is processed; a succeeds and b fails in batch 1.
  Batch b1 = Submit(customer_a_, space_a_, {"a", "b", "c"});
  Batch b2 = Submit(customer_a_, space_a_, {"c"});
  DrainAll([](const Job& j) { return j.asset_id == "b" ? Failure() : Success(); });
  Batch before = Get(customer_a_, b1.id);
  EXPECT_EQ(before.count, 3);
  EXPECT_EQ(before.completed, 1);
  EXPECT_EQ(before.errors, 2);
  ASSERT_TRUE(before.finished_ms);
  EXPECT_TRUE(Get(customer_a_, b2.id).finished_ms);

  auto t = store_->TestBatch(customer_a_, b1.id);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_TRUE(*t);
  Batch after = Get(customer_a_, b1.id);
  EXPECT_EQ(after.count, 2);
  EXPECT_EQ(after.errors, 1);
  EXPECT_EQ(after.completed, 1);
  EXPECT_EQ(after.finished_ms, before.finished_ms);
  EXPECT_FALSE(after.superseded);

  // Nothing left to change the second time.
  auto again = store_->TestBatch(customer_a_, b1.id);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
  Batch same = Get(customer_a_, b1.id);
  EXPECT_EQ(same.count, 2);
  EXPECT_EQ(same.errors, 1);
}

TEST_P(BatchAccountingTest, TestOnABatchWithAnUnfinishedImageChangesNothing) {
  Batch batch = Submit(customer_a_, space_a_, {"u1", "u2"});
  auto j = Claim("w");
  ASSERT_TRUE(j);
  ASSERT_TRUE(store_->RecordOutcome(*j, Success()).ok());
  Batch before = Get(customer_a_, batch.id);
  auto t = store_->TestBatch(customer_a_, batch.id);
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(*t);
  Batch after = Get(customer_a_, batch.id);
  EXPECT_EQ(after.count, before.count);
  EXPECT_EQ(after.completed, before.completed);
  EXPECT_EQ(after.errors, before.errors);
  EXPECT_FALSE(after.finished_ms);
  EXPECT_FALSE(after.superseded);
  EXPECT_EQ(store_->TestBatch(customer_b_, batch.id).status().code(), Code::kNotFound);
}

TEST_P(BatchAccountingTest, DeletingAWaitingMemberRecordsAnErrorAndFinishes) {
  Batch batch = Submit(customer_a_, space_a_, {"keep", "drop"});
  ASSERT_TRUE(store_->DeleteAsset(customer_a_, space_a_, "drop").ok());
  Batch mid = Get(customer_a_, batch.id);
  EXPECT_EQ(mid.errors, 1);
  EXPECT_FALSE(mid.finished_ms);
  EXPECT_EQ(store_->GetQueueCounts(customer_a_, false)->size, 1);
  DrainAll([](const Job&) { return Success(); });
  Batch done = Get(customer_a_, batch.id);
  EXPECT_EQ(done.completed, 1);
  EXPECT_EQ(done.errors, 1);
  EXPECT_TRUE(done.finished_ms);
}

TEST_P(BatchAccountingTest, ADeletedMemberLeavesTheListingButNotTheCounts) {
  Batch batch = Submit(customer_a_, space_a_, {"a", "b", "c"});
  DrainAll([](const Job&) { return Success(); });
  ASSERT_TRUE(store_->DeleteAsset(customer_a_, space_a_, "b").ok());
  PageRequest page;
  auto all = store_->ListBatchAssets(customer_a_, batch.id, BatchMemberFilter::kAll, page);
  ASSERT_TRUE(all.ok()) << all.status().message();
  EXPECT_EQ(all->total, 2);
  ASSERT_EQ(all->items.size(), 2u);
  EXPECT_EQ(all->items[0].id, "a");
  EXPECT_EQ(all->items[1].id, "c");
  auto completed =
      store_->ListBatchAssets(customer_a_, batch.id, BatchMemberFilter::kCompleted, page);
  ASSERT_TRUE(completed.ok());
  EXPECT_EQ(completed->total, 2);
  Batch after = Get(customer_a_, batch.id);  // the outcome it had stays counted
  EXPECT_EQ(after.count, 3);
  EXPECT_EQ(after.completed, 3);

  // A new image under the same id is the new batch's member, not the old one's.
  Batch again = Submit(customer_a_, space_a_, {"b"});
  auto old_listing = store_->ListBatchAssets(customer_a_, batch.id, BatchMemberFilter::kAll, page);
  ASSERT_TRUE(old_listing.ok());
  EXPECT_EQ(old_listing->total, 2);
  EXPECT_EQ(old_listing->items.size(), 2u);
  auto new_listing = store_->ListBatchAssets(customer_a_, again.id, BatchMemberFilter::kAll, page);
  ASSERT_TRUE(new_listing.ok());
  EXPECT_EQ(new_listing->total, 1);
}

// ------------------------------------------------------------------ composites (PDF split)

// The pages of PDF image `id`, as ingest makes them.
static std::vector<Asset> Pages(int64_t customer, int64_t space, const std::string& id, int n) {
  std::vector<Asset> pages;
  for (int i = 1; i <= n; ++i) {
    Asset p;
    p.customer = customer;
    p.space = space;
    p.id = PdfPageId(id, i);
    p.origin = "https://example.org/" + id + ".pdf#page=" + std::to_string(i);
    p.media_type = "application/pdf";
    p.family = "I";
    p.delivery_channels = DefaultDeliveryChannels("image/pdf");
    pages.push_back(p);
  }
  return pages;
}

TEST_P(BatchAccountingTest, ASplitAddsItsPagesToTheBatchInTheOutcomesTransaction) {
  Batch batch = Submit(customer_a_, space_a_, {"book", "plate"});
  ASSERT_EQ(batch.count, 2);
  auto job = Claim("w");
  ASSERT_TRUE(job);
  ASSERT_EQ(job->asset_id, "book");
  IngestOutcome parent;
  parent.success = true;
  parent.duration_ms = 30;
  ASSERT_TRUE(store_->SplitComposite(*job, parent, Pages(customer_a_, space_a_, "book", 12)).ok());

  // One commit: the count, the PDF image's outcome and the pages are there together.
  Batch split = Get(customer_a_, batch.id);
  EXPECT_EQ(split.count, 14);
  EXPECT_EQ(split.completed, 1);
  EXPECT_EQ(split.errors, 0);
  EXPECT_FALSE(split.finished_ms);
  auto members =
      store_->ListBatchAssets(customer_a_, batch.id, BatchMemberFilter::kAll, PageRequest{1, 100});
  ASSERT_TRUE(members.ok()) << members.status().message();
  ASSERT_EQ(members->total, 14);
  EXPECT_EQ(members->items[0].id, "book");
  EXPECT_EQ(members->items[1].id, "plate");
  EXPECT_EQ(members->items[2].id, "book-p0001");  // pages after the members, in page order
  EXPECT_EQ(members->items[13].id, "book-p0012");
  auto page7 = store_->GetAsset(customer_a_, space_a_, "book-p0007");
  ASSERT_TRUE(page7.ok());
  EXPECT_TRUE(page7->ingesting);
  EXPECT_EQ(page7->batch, batch.id);
  EXPECT_TRUE(page7->IsPdfImage());
  auto space = store_->GetSpace(customer_a_, space_a_);
  ASSERT_TRUE(space.ok());
  EXPECT_EQ(space->approximate_images, 14);

  // The same split again (a lost acknowledgement) is refused and changes nothing.
  Status again = store_->SplitComposite(*job, parent, Pages(customer_a_, space_a_, "book", 12));
  EXPECT_EQ(again.code(), Code::kConflict) << again.message();
  EXPECT_EQ(Get(customer_a_, batch.id).count, 14);

  // The pages are queued like members and the batch finishes once, exactly.
  DrainAll(
      [](const Job& j) { return j.asset_id == "book-p0003" ? Failure("bad page") : Success(); });
  Batch done = Get(customer_a_, batch.id);
  EXPECT_EQ(done.count, 14);
  EXPECT_EQ(done.completed, 13);
  EXPECT_EQ(done.errors, 1);
  EXPECT_TRUE(done.finished_ms);
}

TEST_P(BatchAccountingTest, ASplitFromALostLeaseOrWithAPageAlreadyInTheBatchWritesNothing) {
  Batch batch = Submit(customer_a_, space_a_, {"doc", "doc-p0002"});
  auto first = Claim("slow", /*lease_ms=*/1);
  ASSERT_TRUE(first);
  ASSERT_EQ(first->asset_id, "doc");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto second = Claim("fast");
  ASSERT_TRUE(second);
  ASSERT_EQ(second->id, first->id);
  IngestOutcome parent;
  parent.success = true;
  Status lost = store_->SplitComposite(*first, parent, Pages(customer_a_, space_a_, "doc", 3));
  EXPECT_EQ(lost.code(), Code::kConflict) << lost.message();
  EXPECT_EQ(Get(customer_a_, batch.id).count, 2);
  EXPECT_EQ(store_->GetAsset(customer_a_, space_a_, "doc-p0001").status().code(), Code::kNotFound);

  // "doc-p0002" is a member already: the split is refused whole.
  Status clash = store_->SplitComposite(*second, parent, Pages(customer_a_, space_a_, "doc", 3));
  EXPECT_EQ(clash.code(), Code::kInvalid) << clash.message();
  EXPECT_NE(clash.message().find("doc-p0002"), std::string::npos) << clash.message();
  Batch after = Get(customer_a_, batch.id);
  EXPECT_EQ(after.count, 2);
  EXPECT_EQ(after.completed + after.errors, 0);
  EXPECT_EQ(store_->GetAsset(customer_a_, space_a_, "doc-p0001").status().code(), Code::kNotFound);
  // The job is still held: its owner records the failure instead.
  ASSERT_TRUE(store_->RecordOutcome(*second, Failure(clash.message())).ok());
  EXPECT_EQ(Get(customer_a_, batch.id).errors, 1);
}

INSTANTIATE_TEST_SUITE_P(Stores, BatchAccountingTest, ::testing::ValuesIn(test::StoreBackends()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace quire
