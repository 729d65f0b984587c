// A CUDA graph captured from a stream: what a piece of host code enqueues on the stream, recorded
// once (stream capture) and then launched as one graph, with every kernel argument, pointer and
// cuBLAS call frozen as recorded. Host code; every CUDA call checked with file:line.
#pragma once

#include <cuda_runtime_api.h>

#include <functional>

namespace uv::cuda {

class StreamGraph {
 public:
  // Runs `work` with `stream` capturing (nothing it enqueues executes), then instantiates the
  // graph. Capture mode ThreadLocal: a call from this thread that cannot be captured (cudaMalloc,
  // a synchronous copy, a stream synchronisation) fails at once, naming its file and line, while
  // threads that do not take part in the capture are left alone (Global would fail their unsafe
  // calls too; uvtrain drives CUDA from one thread, so it would catch nothing more). If `work`
  // throws, the capture is ended and discarded before the exception goes on.
  StreamGraph(cudaStream_t stream, const std::function<void()>& work);
  ~StreamGraph();
  StreamGraph(const StreamGraph&) = delete;
  StreamGraph& operator=(const StreamGraph&) = delete;

  // Enqueues the whole recorded work on the stream it was captured from.
  void launch();
  size_t nodes() const { return nodes_; }

 private:
  cudaStream_t stream_;
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
  size_t nodes_ = 0;
};

}  // namespace uv::cuda
