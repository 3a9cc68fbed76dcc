// The single-process pieces of data-parallel training: how launchers are recognised, batch
// shards, random draws keyed by the global sample index, and a run of one rank. The runs on
// two ranks are tests/distributed/ (under mpirun).
#include <map>

#include "support/test_support.h"
#include "tessera/datasets/factory.h"
#include "tessera/datasets/loader.h"
#include "tessera/nn/layers.h"
#include "tessera/train/distributed.h"

using namespace tessera;
namespace tt = tessera::train;

namespace {

// A fake environment for detect_launcher.
auto env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> const char* {
    const auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

}  // namespace

BOOST_AUTO_TEST_SUITE(distributed_pieces)

BOOST_AUTO_TEST_CASE(launchers_are_recognised_from_their_environment) {
  BOOST_TEST(tt::detect_launcher(env({})).launcher.empty());
  const tt::LaunchInfo mpirun = tt::detect_launcher(
      env({{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "8"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}}));
  BOOST_TEST(mpirun.launcher == "mpirun");
  BOOST_TEST(mpirun.rank == 3);
  BOOST_TEST(mpirun.size == 8);
  BOOST_TEST(mpirun.local_size == 4);
  // Slurm's srun, as it sets its variables for each task.
  const tt::LaunchInfo srun = tt::detect_launcher(env({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "16"}}));
  BOOST_TEST(srun.launcher == "srun");
  BOOST_TEST(srun.rank == 5);
  BOOST_TEST(srun.size == 16);
  BOOST_TEST(srun.local_size == 1);
  // MPICH's hydra and PMIx launchers.
  BOOST_TEST(tt::detect_launcher(env({{"PMI_RANK", "1"}, {"PMI_SIZE", "2"}})).size == 2);
  BOOST_TEST(tt::detect_launcher(env({{"PMIX_RANK", "0"}, {"PMIX_SIZE", "4"}})).size == 4);
  // Under srun --mpi=pmix with Open MPI both are set; Open MPI's variables describe the MPI world.
  BOOST_TEST(tt::detect_launcher(env({{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}, {"OMPI_COMM_WORLD_RANK", "1"},
                                      {"OMPI_COMM_WORLD_SIZE", "2"}}))
                 .launcher == "mpirun");
}

BOOST_AUTO_TEST_CASE(a_launcher_variable_that_makes_no_sense_is_refused) {
  for (const auto& [rank, size] : std::vector<std::pair<std::string, std::string>>{
           {"2", "2"}, {"-1", "2"}, {"0", "0"}, {"x", "2"}, {"0", "2x"}, {"0", "99999999999"}}) {
    BOOST_TEST_CONTEXT("SLURM_PROCID=" << rank << " SLURM_NTASKS=" << size) {
      BOOST_CHECK_THROW(tt::detect_launcher(env({{"SLURM_PROCID", rank}, {"SLURM_NTASKS", size}})), ConfigError);
    }
  }
}

BOOST_AUTO_TEST_CASE(shards_cover_a_batch_once_the_first_ones_larger) {
  for (std::int64_t rows : {0, 1, 2, 7, 64, 1000})
    for (std::int64_t count : {1, 2, 3, 8}) {
      std::int64_t next = 0;
      for (std::int64_t i = 0; i < count; ++i) {
        const datasets::Shard s = datasets::shard_of(rows, i, count);
        BOOST_TEST(s.offset == next);
        BOOST_TEST((s.size == rows / count || s.size == rows / count + 1));
        if (i > 0) BOOST_TEST(s.size <= datasets::shard_of(rows, i - 1, count).size);
        next += s.size;
      }
      BOOST_TEST(next == rows);
    }
  BOOST_CHECK_THROW(datasets::shard_of(7, 2, 2), Error);
  BOOST_CHECK_THROW(datasets::shard_of(7, 0, 0), Error);
}

BOOST_AUTO_TEST_CASE(sharded_loaders_yield_the_rows_of_the_whole_batch) {
  const datasets::DatasetPtr data = datasets::make_dataset(
      "synthetic", "", datasets::Split::train,
      {.image_shape = datasets::ImageShape{1, 8, 8}, .size = 23, .num_classes = 3, .seed = 5});
  const auto options = [](std::int64_t index, std::int64_t count) {
    return datasets::LoaderOptions{.batch_size = 5, .seed = 9,
                                   .transforms = {datasets::transforms::random_crop({.padding = 1})},
                                   .prefetch = 0, .shard_index = index, .shard_count = count};
  };
  const datasets::DataLoader whole(data, options(0, 1));
  for (std::int64_t count : {2, 3, 6}) {
    std::vector<datasets::DataLoader> shards;
    for (std::int64_t i = 0; i < count; ++i) shards.emplace_back(data, options(i, count));
    for (std::int64_t k = 0; k < whole.num_batches(); ++k) {
      const datasets::Batch all = whole.batch(1, k);
      std::vector<float> joined;
      std::vector<std::int64_t> samples;
      for (const datasets::DataLoader& s : shards) {
        BOOST_TEST(s.num_batches() == whole.num_batches());
        const datasets::Batch part = s.batch(1, k);
        BOOST_TEST(part.global_size == all.size());
        BOOST_TEST(part.shard_offset == static_cast<std::int64_t>(samples.size()));
        const std::vector<float> px = part.images.to_vector<float>();
        joined.insert(joined.end(), px.begin(), px.end());
        samples.insert(samples.end(), part.samples.begin(), part.samples.end());
      }
      // The same samples, augmented with the same draws, in the same order.
      BOOST_TEST(samples == all.samples, boost::test_tools::per_element());
      BOOST_TEST(joined == all.images.to_vector<float>(), boost::test_tools::per_element());
    }
  }
  BOOST_CHECK_THROW(datasets::DataLoader(data, options(2, 2)), ConfigError);
}

BOOST_AUTO_TEST_CASE(random_draws_of_a_shard_are_the_rows_of_the_whole_batch) {
  // Dropout, attention dropout's (B, H, N, N) layout and drop path: each shard's draws equal
  // the matching rows of one process's draws over the whole batch, and every shard leaves
  // the generator where the whole batch does.
  const Tensor x = ones({6, 2, 3, 4});
  nn::DropPath drop_path(0.5);
  const auto draw = [&](const Tensor& in, Generator& gen) {
    std::vector<double> out = dropout(in, 0.5, true, gen).to_vector<double>();
    const std::vector<double> path = drop_path.forward(in).to_vector<double>();  // the default generator
    out.insert(out.end(), path.begin(), path.end());
    return out;
  };
  manual_seed(3);
  Generator whole_gen(7);
  const std::vector<double> whole = draw(x, whole_gen);
  const std::size_t per_row = static_cast<std::size_t>(x.numel() / 6);
  for (const auto& [offset, rows] : std::vector<std::pair<std::int64_t, std::int64_t>>{{0, 4}, {4, 2}, {1, 1}}) {
    BOOST_TEST_CONTEXT("rows " << offset << " to " << offset + rows) {
      manual_seed(3);
      Generator gen(7);
      std::vector<double> part;
      {
        const BatchShardGuard shard({6, offset, rows});
        part = draw(slice(x, 0, offset, offset + rows), gen);
      }
      const auto row = [&](std::size_t first, std::int64_t r) {
        return whole.begin() + static_cast<std::ptrdiff_t>(first + static_cast<std::size_t>(r) * per_row);
      };
      // dropout rows, then the drop-path rows (after the 6 * per_row dropout values).
      BOOST_TEST(std::equal(part.begin(), part.begin() + rows * per_row, row(0, offset)));
      BOOST_TEST(std::equal(part.begin() + rows * per_row, part.end(), row(6 * per_row, offset)));
      BOOST_TEST((gen.state() == whole_gen.state()));
    }
  }
  // A draw that is not over the shard's rows is refused, not silently misaligned.
  const BatchShardGuard shard({6, 0, 4});
  Generator gen(1);
  BOOST_CHECK_THROW(dropout(ones({3, 5}), 0.5, true, gen), Error);
  BOOST_CHECK_THROW(BatchShardGuard({4, 3, 2}), Error);
}

BOOST_AUTO_TEST_CASE(one_rank_alone_needs_no_launcher) {
  const std::unique_ptr<tt::Communicator> one = tt::single_process();
  BOOST_TEST(one->size() == 1);
  std::vector<float> v{1, 2};
  one->all_reduce_sum(v, "test");
  BOOST_TEST(v == (std::vector<float>{1, 2}), boost::test_tools::per_element());
  BOOST_TEST(!one->agree(std::nullopt));
  BOOST_TEST(one->agree(tt::RankError{0, "x", true})->message == "x");
  BOOST_CHECK_THROW(one->set_timeout(0), ConfigError);
  // Gradients stay as they are with one rank.
  Tensor w = zeros({2});
  w.set_grad(from_vector(std::vector<float>{3, 4}, {2}));
  tt::all_reduce_gradients(*one, std::vector<Tensor>{w}, 0.5);
  BOOST_TEST(w.grad().to_vector<double>() == (std::vector<double>{3, 4}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()
