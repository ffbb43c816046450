#include "align/synthetic.h"

#include <Eigen/Cholesky>
#include <cmath>
#include <random>

namespace braid::align {
namespace {

// Column-major for the solver; the public matrices stay row-major.
using DenseMatrix = Eigen::MatrixXf;

DenseMatrix Gaussian(Eigen::Index rows, Eigen::Index cols, double std, std::mt19937& random) {
  std::normal_distribution<float> normal(0.0f, static_cast<float>(std));
  DenseMatrix out(rows, cols);
  for (Eigen::Index c = 0; c < cols; ++c) {
    for (Eigen::Index r = 0; r < rows; ++r) out(r, c) = normal(random);
  }
  return out;
}

// One modality's encoder: x = map z + nuisance u + noise e + offset.
struct Encoder {
  DenseMatrix map;         // [D, L]
  DenseMatrix nuisance;    // [D, M]
  Eigen::VectorXf offset;  // [D]
  // E[z | x] = map^T (map map^T + nuisance nuisance^T + noise^2 I)^-1 (x - offset),
  // as a [D, L] matrix applied to centred rows.
  DenseMatrix posterior;

  Encoder(const SyntheticOptions& options, std::mt19937& random) {
    const auto d = options.dim;
    // Columns of unit expected norm: along its own direction each latent
    // coordinate has variance 1, against noise^2 from the noise.
    map = Gaussian(d, options.latent_dim, 1.0 / std::sqrt(double(d)), random);
    nuisance = Gaussian(d, options.nuisance_dim, 1.0 / std::sqrt(double(d)), random);
    // An offset as long as the signal part of a typical embedding.
    offset = Gaussian(d, 1, std::sqrt(double(options.latent_dim) / double(d)), random);
    DenseMatrix covariance = map * map.transpose() + nuisance * nuisance.transpose();
    covariance.diagonal().array() += static_cast<float>(options.noise * options.noise) + 1e-6f;
    posterior = covariance.llt().solve(map);
  }

  Matrix Encode(const DenseMatrix& latent, const SyntheticOptions& options,
                std::mt19937& random) const {
    const auto n = latent.rows();
    DenseMatrix x = latent * map.transpose() +
                    Gaussian(n, options.nuisance_dim, 1.0, random) * nuisance.transpose() +
                    Gaussian(n, options.dim, options.noise, random);
    x.rowwise() += offset.transpose();
    return x;
  }

  Matrix Posterior(const Matrix& x) const {
    DenseMatrix centred = x;
    centred.rowwise() -= offset.transpose();
    return centred * posterior;
  }
};

}  // namespace

Result<SyntheticPairs> GenerateSyntheticPairs(const SyntheticOptions& options) {
  if (options.count < 1) return InvalidArgument("count must be at least 1, not {}", options.count);
  if (options.dim < 1) return InvalidArgument("dim must be at least 1, not {}", options.dim);
  if (options.latent_dim < 1 || options.latent_dim > options.dim) {
    return InvalidArgument("latent dim must be between 1 and {}, not {}", options.dim,
                           options.latent_dim);
  }
  if (options.nuisance_dim < 0) {
    return InvalidArgument("nuisance dim must be 0 or more, not {}", options.nuisance_dim);
  }
  if (!(options.noise >= 0)) {
    return InvalidArgument("noise must be 0 or more, not {}", options.noise);
  }

  std::mt19937 world(options.world_seed);
  const Encoder image_encoder(options, world);
  const Encoder text_encoder(options, world);

  std::mt19937 random(options.seed);
  const DenseMatrix latent = Gaussian(options.count, options.latent_dim, 1.0, random);
  SyntheticPairs out;
  out.pairs.images = image_encoder.Encode(latent, options, random);
  out.pairs.texts = text_encoder.Encode(latent, options, random);
  out.oracle.images = image_encoder.Posterior(out.pairs.images);
  out.oracle.texts = text_encoder.Posterior(out.pairs.texts);
  return out;
}

}  // namespace braid::align
