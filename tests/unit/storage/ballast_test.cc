#include "storage/ballast.h"

#include <gtest/gtest.h>

#include "tests/unit/testing/test_util.h"
#include <filesystem>
#include <sys/stat.h>

namespace hubcast::storage {
namespace {

namespace fs = std::filesystem;

// The reserve is real space (allocated blocks, not a sparse file), goes on Release and is
// made again by Arm; a zero size disables it.
TEST(BallastTest, ArmAllocatesTheSpaceAndReleaseGivesItBack) {
  hubcast::testing::TempDir dir;
  const std::string path = dir.path() + "/db.ballast";
  Ballast ballast(path, 4 << 20);
  ASSERT_TRUE(ballast.Arm());
  EXPECT_TRUE(ballast.armed());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 4 << 20);
  EXPECT_GE(static_cast<int64_t>(st.st_blocks) * 512, 4 << 20) << "a sparse file reserves nothing";
  EXPECT_TRUE(ballast.HasRoom());

  EXPECT_TRUE(ballast.Release());
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(ballast.Release()) << "released twice";
  // The temporary directory's disk has far more than 4 MiB free.
  EXPECT_TRUE(ballast.HasRoom());
  ASSERT_TRUE(ballast.Arm());
  EXPECT_TRUE(fs::exists(path));

  Ballast none(dir.path() + "/none.ballast", 0);
  EXPECT_FALSE(none.Arm());
  EXPECT_TRUE(none.HasRoom());
  EXPECT_FALSE(fs::exists(dir.path() + "/none.ballast"));
}

}  // namespace
}  // namespace hubcast::storage
