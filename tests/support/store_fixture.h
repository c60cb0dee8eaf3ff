// The base of the store contract tests: each test gets a fresh, migrated store on the backend
// it is instantiated for (INSTANTIATE_TEST_SUITE_P(Stores, X, ValuesIn(StoreBackends()))),
// and helpers that add the customers and spaces most tests start from.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>

#include "store/store.h"
#include "support/quire_process.h"
#include "support/test_database.h"

namespace quire::test {

class StoreContractTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override;

  // A new customer named `name` (also its display name); 0, with a test failure, if refused.
  int64_t MakeCustomer(const std::string& name);
  // A new space of `customer`; 0, with a test failure, if refused.
  int64_t MakeSpace(int64_t customer, const std::string& name);

  TempDir dir_;
  std::unique_ptr<Store> store_;
};

}  // namespace quire::test
