// The libtorch backend (`backend: torchscript`): TorchScript modules, as
// `torch.jit.script(model).save(...)` or `torch.jit.trace(...)` write them,
// run by libtorch. Built when CMake finds libtorch (Debian's libtorch-dev,
// or a PyTorch install's with -DTORCH_ROOT=...), like the Tesseract
// backend; the only translation unit that includes libtorch's headers.
//
// <version>/model.pt (or the config's default_model_filename). forward()
// takes the config's inputs in config order, each with its batch dimension,
// and returns one tensor (a single output), a tuple or list of tensors
// (config order) or a dict of them (by output name); each must have the
// config's data type. Inputs are copied into tensors the module owns (a
// module may write them in place, and an output may be a view of one);
// outputs are wrapped, not copied.
//
// Threads: libtorch's own intra-op pool (OpenMP), sized once to the
// process's compute budget (at::set_num_threads); it does not draw leases
// from the budget the ONNX Runtime sessions share. Under `braid serve` that
// pool has one thread: the server caps OpenMP at one thread per region
// (OMP_THREAD_LIMIT, KeepEnginesSingleThreaded) so that Tesseract's
// parallel loops cannot oversubscribe the cores, and libtorch's parallel
// regions obey the same cap. Scale a torchscript model with
// instance_group.count.
//
// optimization.execution_provider cuda runs the module on the GPU (it needs
// a CUDA build of libtorch: Debian's is CPU only, and says so at load);
// there, precision fp16 converts the module's floating-point parameters and
// its FP32 inputs to half and its half outputs back to FP32 (refused on the
// CPU, where libtorch has no half matrix products). parameters.cuda_graphs
// ("1,8,32") captures forward() as a CUDA graph for each of those batch
// sizes at load (inputs' dims must be fixed); a batch of such a size then
// replays its graph, one launch instead of one per kernel (a CUDA build of
// libtorch: BRAID_TORCH_CUDA). Each instance runs one warm-up batch of zeros
// at load, which also checks the outputs against the config.
#pragma once

#include "model/backend.h"

namespace braid {

inline constexpr char kTorchScriptBackend[] = "torchscript";

BackendFactory MakeTorchScriptBackend();

}  // namespace braid
