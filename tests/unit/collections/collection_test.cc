#include "collections/collection.h"

#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "collections/collection_store.h"
#include "support/temp_dir.h"

namespace braid {
namespace {

// Random unit vectors; item i is the one search for Vectors()[i] finds.
std::vector<std::vector<float>> Vectors(std::size_t count, int dimension, unsigned seed = 1) {
  std::mt19937 random(seed);
  std::normal_distribution<float> normal;
  std::vector<std::vector<float>> vectors(count, std::vector<float>(dimension));
  for (auto& vector : vectors) {
    for (float& x : vector) x = normal(random);
  }
  return vectors;
}

std::vector<Item> Texts(std::size_t count, const std::string& prefix = "item") {
  std::vector<Item> items;
  for (std::size_t i = 0; i < count; ++i)
    items.push_back({prefix + std::to_string(i), "text " + std::to_string(i), "", "", ""});
  return items;
}

std::string TopId(const Collection& collection, const std::vector<float>& query) {
  auto matches = collection.Search(query, 1);
  EXPECT_TRUE(matches.ok()) << matches.status().message();
  return matches.ok() && !matches->empty() ? (*matches)[0].item.id : "";
}

CollectionOptions SmallHnsw() {
  CollectionOptions options;
  options.hnsw_threshold = 64;
  return options;
}

TEST(CollectionTest, AddSearchAndRemoveInMemory) {
  auto collection = Collection::Create("notes", EmbeddingSpace::kClipAligned, {}, {});
  ASSERT_TRUE(collection.ok());
  auto vectors = Vectors(20, 128);
  auto added = (*collection)->Add(Texts(20), vectors);
  ASSERT_TRUE(added.ok()) << added.status().message();
  EXPECT_EQ(added->created, 20u);
  auto matches = (*collection)->Search(vectors[7], 3);
  ASSERT_TRUE(matches.ok());
  ASSERT_EQ(matches->size(), 3u);
  EXPECT_EQ((*matches)[0].item.id, "item7");
  EXPECT_EQ((*matches)[0].item.text, "text 7");
  EXPECT_NEAR((*matches)[0].score, 1.0, 1e-5);
  EXPECT_GE((*matches)[0].score, (*matches)[1].score);

  ASSERT_TRUE((*collection)->Remove("item7").ok());
  EXPECT_NE(TopId(**collection, vectors[7]), "item7");
  EXPECT_EQ((*collection)->Remove("item7").code(), StatusCode::kNotFound);
  EXPECT_EQ((*collection)->Info().count, 19u);
}

TEST(CollectionTest, ReplacesAnExistingIdAndGeneratesMissingOnes) {
  auto collection = *Collection::Create("c", EmbeddingSpace::kClipAligned, {}, {});
  auto vectors = Vectors(3, 128);
  ASSERT_TRUE(collection->Add({{"a", "first", "", "", ""}}, {vectors[0]}).ok());
  auto replaced = collection->Add({{"a", "second", "", "", ""}}, {vectors[1]});
  ASSERT_TRUE(replaced.ok());
  EXPECT_EQ(replaced->created, 0u);
  EXPECT_EQ(collection->Info().count, 1u);
  auto matches = *collection->Search(vectors[1], 5);
  ASSERT_EQ(matches.size(), 1u);
  EXPECT_EQ(matches[0].item.text, "second");

  auto generated = collection->Add({Item{}}, {vectors[2]});
  ASSERT_TRUE(generated.ok());
  EXPECT_EQ(generated->ids[0].size(), 16u);
  EXPECT_EQ(TopId(*collection, vectors[2]), generated->ids[0]);
}

TEST(CollectionTest, RejectsWrongDimensionsBadVectorsAndIds) {
  auto collection = *Collection::Create("c", EmbeddingSpace::kClip, {}, {});
  auto wrong = collection->Add(Texts(1), Vectors(1, 128));
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(wrong.status().message().find("512-dimensional vectors, not 128"), std::string::npos)
      << wrong.status().message();
  EXPECT_EQ(collection->Search(std::vector<float>(128, 1.f), 1).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(collection->Add(Texts(1), {std::vector<float>(512, 0.f)}).status().code(),
            StatusCode::kInvalidArgument);
  auto nan = Vectors(1, 512);
  nan[0][3] = std::nanf("");
  EXPECT_EQ(collection->Add(Texts(1), nan).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(collection->Add({{"a/b", "", "", "", ""}}, Vectors(1, 512)).status().code(),
            StatusCode::kInvalidArgument);
  // A bad item fails the whole request: nothing was added.
  auto items = Texts(2);
  items[1].id = std::string(300, 'x');
  EXPECT_FALSE(collection->Add(items, Vectors(2, 512)).ok());
  EXPECT_EQ(collection->Info().count, 0u);
}

TEST(CollectionTest, ValidatesNames) {
  for (const char* name : {"", "..", ".hidden", "a/b", "../etc", "with space", "ü"})
    EXPECT_FALSE(ValidateCollectionName(name).ok()) << name;
  EXPECT_FALSE(ValidateCollectionName(std::string(65, 'a')).ok());
  for (const char* name : {"photos", "team-1.v2", "A_b"})
    EXPECT_TRUE(ValidateCollectionName(name).ok()) << name;
  EXPECT_FALSE(Collection::Create("../x", EmbeddingSpace::kClip, {}, {}).ok());
}

TEST(CollectionTest, SwitchesToHnswPastTheThreshold) {
  auto collection = *Collection::Create("c", EmbeddingSpace::kClipAligned, {}, SmallHnsw());
  auto vectors = Vectors(100, 128);
  ASSERT_TRUE(collection->Add(Texts(50), {vectors.begin(), vectors.begin() + 50}).ok());
  EXPECT_EQ(collection->Info().index, IndexKind::kFlat);
  auto items = Texts(100);
  ASSERT_TRUE(
      collection->Add({items.begin() + 50, items.end()}, {vectors.begin() + 50, vectors.end()})
          .ok());
  EXPECT_EQ(collection->Info().index, IndexKind::kHnsw);
  EXPECT_EQ(collection->Info().count, 100u);
  for (int i : {0, 42, 77, 99}) EXPECT_EQ(TopId(*collection, vectors[i]), items[i].id);
}

TEST(CollectionTest, HnswSkipsTombstonesAndCompactsThem) {
  auto collection = *Collection::Create("c", EmbeddingSpace::kClipAligned, {}, SmallHnsw());
  auto vectors = Vectors(200, 128);
  auto items = Texts(200);
  ASSERT_TRUE(collection->Add(items, vectors).ok());
  ASSERT_EQ(collection->Info().index, IndexKind::kHnsw);
  // Fewer than a quarter: tombstones, filtered at search.
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(collection->Remove(items[i].id).ok());
  for (int i : {0, 10, 39}) {
    auto matches = *collection->Search(vectors[i], 10);
    EXPECT_EQ(matches.size(), 10u);
    for (const auto& match : matches) EXPECT_NE(match.item.id, items[i].id);
  }
  EXPECT_EQ(TopId(*collection, vectors[150]), items[150].id);
  // Past a quarter: rebuilt without them (still HNSW: 140 live > 64).
  for (int i = 40; i < 60; ++i) ASSERT_TRUE(collection->Remove(items[i].id).ok());
  EXPECT_EQ(collection->Info().count, 140u);
  EXPECT_EQ(collection->Info().index, IndexKind::kHnsw);
  for (int i : {60, 100, 199}) EXPECT_EQ(TopId(*collection, vectors[i]), items[i].id);
  EXPECT_EQ(collection->Search(vectors[0], 500)->size(), 140u);
}

TEST(CollectionTest, PersistsThroughTheLogAndSnapshots) {
  testing::TempDir dir;
  auto vectors = Vectors(300, 128);
  auto items = Texts(300);
  items[3].metadata = R"({"page":3})";
  items[4] = {"img", "", "image/png", "cat.png", ""};
  {
    auto collection =
        *Collection::Create("c", EmbeddingSpace::kClipAligned, dir.path() / "c", SmallHnsw());
    ASSERT_TRUE(
        collection
            ->Add({items.begin(), items.begin() + 10}, {vectors.begin(), vectors.begin() + 10})
            .ok());
    ASSERT_TRUE(collection->Remove("item5").ok());
  }
  {
    // Replayed from the log alone.
    auto collection = Collection::Open("c", dir.path() / "c", SmallHnsw());
    ASSERT_TRUE(collection.ok()) << collection.status().message();
    EXPECT_EQ((*collection)->Info().count, 9u);
    auto match = (*(*collection)->Search(vectors[3], 1))[0];
    EXPECT_EQ(match.item.metadata, R"({"page":3})");
    auto image = (*(*collection)->Search(vectors[4], 1))[0];
    EXPECT_EQ(image.item.id, "img");
    EXPECT_EQ(image.item.media_type, "image/png");
    EXPECT_EQ(image.item.name, "cat.png");
    EXPECT_NE(TopId(**collection, vectors[5]), "item5");
    // Past the threshold: rebuilt as HNSW and snapshotted.
    ASSERT_TRUE((*collection)
                    ->Add({items.begin() + 10, items.end()}, {vectors.begin() + 10, vectors.end()})
                    .ok());
    EXPECT_EQ((*collection)->Info().index, IndexKind::kHnsw);
    ASSERT_TRUE((*collection)->Remove("item200").ok());
  }
  auto collection = Collection::Open("c", dir.path() / "c", SmallHnsw());
  ASSERT_TRUE(collection.ok()) << collection.status().message();
  EXPECT_EQ((*collection)->Info().index, IndexKind::kHnsw);
  EXPECT_EQ((*collection)->Info().count, 298u);
  EXPECT_EQ((*collection)->space(), EmbeddingSpace::kClipAligned);
  for (int i : {0, 150, 299}) EXPECT_EQ(TopId(**collection, vectors[i]), items[i].id);
  EXPECT_NE(TopId(**collection, vectors[200]), "item200");
  // One generation's files only.
  int files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.path() / "c"))
    ++files;
  EXPECT_LE(files, 3);
}

TEST(CollectionTest, IgnoresATornLastLogLine) {
  testing::TempDir dir;
  auto vectors = Vectors(2, 128);
  {
    auto collection = *Collection::Create("c", EmbeddingSpace::kClipAligned, dir.path() / "c", {});
    ASSERT_TRUE(collection->Add(Texts(2), vectors).ok());
  }
  std::filesystem::path log;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path() / "c")) {
    if (entry.path().extension() == ".jsonl") log = entry.path();
  }
  ASSERT_FALSE(log.empty());
  std::ofstream(log, std::ios::app) << R"({"op":"add","item":{"id":"half)";
  {
    auto collection = Collection::Open("c", dir.path() / "c", {});
    ASSERT_TRUE(collection.ok()) << collection.status().message();
    EXPECT_EQ((*collection)->Info().count, 2u);
    ASSERT_TRUE((*collection)->Remove("item0").ok());
  }
  auto collection = Collection::Open("c", dir.path() / "c", {});
  ASSERT_TRUE(collection.ok()) << collection.status().message();
  EXPECT_EQ((*collection)->Info().count, 1u);
}

TEST(CollectionStoreTest, CreatesOnAddReloadsAndDrops) {
  testing::TempDir dir;
  CollectionStoreOptions options;
  options.directory = dir.path();
  auto vectors = Vectors(5, 512);
  {
    CollectionStore store(options);
    store.Load();
    EXPECT_TRUE(store.List().empty());
    EXPECT_EQ(store.Get("photos").status().code(), StatusCode::kNotFound);
    ASSERT_TRUE(store.Add("photos", EmbeddingSpace::kClip, Texts(5), vectors).ok());
    ASSERT_TRUE(store.Add("aligned", EmbeddingSpace::kClipAligned, Texts(1), Vectors(1, 128)).ok());
    auto other = store.Add("photos", EmbeddingSpace::kClipAligned, Texts(1), Vectors(1, 128));
    EXPECT_EQ(other.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(other.status().message().find("holds clip vectors (512 dimensions)"),
              std::string::npos)
        << other.status().message();
    EXPECT_EQ(store.Remove("photos", "item1").code(), StatusCode::kOk);
    EXPECT_EQ(store.Remove("photos", "item1").code(), StatusCode::kNotFound);
    EXPECT_EQ(store.Remove("nothing", "item1").code(), StatusCode::kNotFound);
    EXPECT_EQ(store.Get("../etc").status().code(), StatusCode::kInvalidArgument);
  }
  CollectionStore store(options);
  store.Load();
  auto list = store.List();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].name, "aligned");
  EXPECT_EQ(list[1].name, "photos");
  EXPECT_EQ(list[1].count, 4u);
  EXPECT_EQ(TopId(**store.Get("photos"), vectors[3]), "item3");
  ASSERT_TRUE(store.Drop("photos").ok());
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "photos"));
  EXPECT_EQ(store.Drop("photos").code(), StatusCode::kNotFound);
  EXPECT_EQ(store.List().size(), 1u);
}

TEST(CollectionStoreTest, EnforcesItsCaps) {
  CollectionStoreOptions options;
  options.max_collections = 2;
  options.max_items = 10;
  CollectionStore store(options);
  ASSERT_TRUE(store.Add("a", EmbeddingSpace::kClipAligned, Texts(6), Vectors(6, 128)).ok());
  ASSERT_TRUE(store.Add("b", EmbeddingSpace::kClipAligned, Texts(2), Vectors(2, 128)).ok());
  EXPECT_EQ(store.Add("c", EmbeddingSpace::kClipAligned, Texts(1), Vectors(1, 128)).status().code(),
            StatusCode::kTooLarge);
  EXPECT_EQ(store.Add("a", EmbeddingSpace::kClipAligned, Texts(3, "new"), Vectors(3, 128))
                .status()
                .code(),
            StatusCode::kTooLarge);
  // Replacing items does not count twice; removing frees room.
  EXPECT_TRUE(store.Add("a", EmbeddingSpace::kClipAligned, Texts(2), Vectors(2, 128, 2)).ok());
  EXPECT_TRUE(store.Add("a", EmbeddingSpace::kClipAligned, Texts(2, "new"), Vectors(2, 128)).ok());
  ASSERT_TRUE(store.Drop("b").ok());
  EXPECT_TRUE(store.Add("c", EmbeddingSpace::kClipAligned, Texts(2), Vectors(2, 128)).ok());
}

TEST(CollectionStoreTest, LeavesOutAnUnreadableCollection) {
  testing::TempDir dir;
  dir.Write("broken/collection.json", "{not json");
  CollectionStoreOptions options;
  options.directory = dir.path();
  CollectionStore store(options);
  store.Load();
  EXPECT_TRUE(store.List().empty());
  EXPECT_EQ(store.Add("broken", EmbeddingSpace::kClip, Texts(1), Vectors(1, 512)).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "broken/collection.json"));
}

}  // namespace
}  // namespace braid
