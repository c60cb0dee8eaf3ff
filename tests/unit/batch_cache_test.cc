// BatchCache: a batch read is kept for at most its TTL, dropped by an event of its customer,
// and a read that raced an event is not kept (it may hold the state from before the change).
// BatchBodies: a batch's JSON is made again whenever the batch read differs in any field.
#include "api/batch_cache.h"

#include <gtest/gtest.h>

namespace quire::api {
namespace {

Batch MakeBatch(int64_t customer, int64_t id, int64_t completed) {
  Batch b;
  b.customer = customer;
  b.id = id;
  b.count = 10;
  b.completed = completed;
  return b;
}

TEST(BatchCacheTest, KeepsAReadForItsTtl) {
  BatchCache cache(1000);
  EXPECT_FALSE(cache.Get(1, 5, 0));
  cache.Put(1, MakeBatch(1, 5, 3), cache.Generation(1), 0);
  ASSERT_TRUE(cache.Get(1, 5, 999));
  EXPECT_EQ(cache.Get(1, 5, 999)->completed, 3);
  EXPECT_FALSE(cache.Get(2, 5, 999)) << "another customer's batch of the same id";
  EXPECT_FALSE(cache.Get(1, 5, 1000)) << "expired";
}

TEST(BatchCacheTest, AnEventOfTheCustomerDropsItsBatchesOnly) {
  BatchCache cache(1000);
  cache.Put(1, MakeBatch(1, 5, 3), cache.Generation(1), 0);
  cache.Put(2, MakeBatch(2, 6, 1), cache.Generation(2), 0);
  cache.ForgetCustomer(1);
  EXPECT_FALSE(cache.Get(1, 5, 10));
  EXPECT_TRUE(cache.Get(2, 6, 10));
  cache.Clear();
  EXPECT_FALSE(cache.Get(2, 6, 10));
}

TEST(BatchCacheTest, AReadThatRacedAnEventIsNotKept) {
  BatchCache cache(1000);
  uint64_t before = cache.Generation(1);  // the reader starts its store read ...
  cache.ForgetCustomer(1);                // ... an outcome commits meanwhile ...
  cache.Put(1, MakeBatch(1, 5, 3), before, 0);  // ... and its (old) answer arrives
  EXPECT_FALSE(cache.Get(1, 5, 10));
  uint64_t again = cache.Generation(1);
  cache.Clear();
  cache.Put(1, MakeBatch(1, 5, 4), again, 0);
  EXPECT_FALSE(cache.Get(1, 5, 10)) << "Clear counts as an event of every customer";
  cache.Put(1, MakeBatch(1, 5, 4), cache.Generation(1), 0);
  EXPECT_EQ(cache.Get(1, 5, 10)->completed, 4);
}

TEST(BatchCacheTest, StaysWithinItsBound) {
  BatchCache cache(1000, 3);
  for (int64_t id = 1; id <= 10; ++id) cache.Put(1, MakeBatch(1, id, 0), cache.Generation(1), 0);
  int kept = 0;
  for (int64_t id = 1; id <= 10; ++id) kept += cache.Get(1, id, 1) ? 1 : 0;
  EXPECT_LE(kept, 3);
  EXPECT_TRUE(cache.Get(1, 10, 1)) << "the newest read is kept";
}

TEST(BatchBodiesTest, ABodyIsReusedOnlyForAnEqualBatch) {
  BatchBodies bodies(8);
  int made = 0;
  auto make = [&](const Batch& b) {
    return [&made, b] {
      ++made;
      return std::to_string(b.customer) + "/" + std::to_string(b.id) + ":" +
             std::to_string(b.completed) + ":" + std::to_string(b.est_completion_ms.value_or(-1));
    };
  };
  Batch b = MakeBatch(1, 5, 3);
  EXPECT_EQ(bodies.Body(b, make(b)), "1/5:3:-1");
  EXPECT_EQ(bodies.Body(b, make(b)), "1/5:3:-1");
  EXPECT_EQ(made, 1) << "an unchanged batch is not serialised again";
  // Any field that differs makes it again: counts, estimate, flags; another customer's batch
  // of the same id has its own.
  Batch c = b;
  c.completed = 4;
  EXPECT_EQ(bodies.Body(c, make(c)), "1/5:4:-1");
  Batch e = c;
  e.est_completion_ms = 77;
  EXPECT_EQ(bodies.Body(e, make(e)), "1/5:4:77");
  Batch f = e;
  f.superseded = true;
  bodies.Body(f, make(f));
  Batch other = MakeBatch(2, 5, 4);
  other.est_completion_ms = 77;
  other.superseded = true;
  EXPECT_EQ(bodies.Body(other, make(other)), "2/5:4:77");
  EXPECT_EQ(made, 5);
  // Bounded: past max_entries it starts again and still answers right.
  for (int64_t id = 100; id < 120; ++id) {
    Batch x = MakeBatch(3, id, 1);
    EXPECT_EQ(bodies.Body(x, make(x)), "3/" + std::to_string(id) + ":1:-1");
  }
  EXPECT_EQ(bodies.Body(b, make(b)), "1/5:3:-1");
}

}  // namespace
}  // namespace quire::api
