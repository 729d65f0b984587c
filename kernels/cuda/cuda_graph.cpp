#include "kernels/cuda/cuda_graph.h"

#include "kernels/cuda/cuda_check.h"

namespace uv::cuda {

StreamGraph::StreamGraph(cudaStream_t stream, const std::function<void()>& work) : stream_(stream) {
  CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  try {
    work();
  } catch (...) {
    // Leave the stream usable: end the (possibly invalidated) capture, drop what it recorded, and
    // clear the error an uncapturable call left behind, so the next check does not report it again.
    cudaGraph_t partial = nullptr;
    cudaStreamEndCapture(stream_, &partial);
    if (partial) cudaGraphDestroy(partial);
    cudaGetLastError();
    throw;
  }
  CUDA_CHECK(cudaStreamEndCapture(stream_, &graph_));
  try {
    CUDA_CHECK(cudaGraphGetNodes(graph_, nullptr, &nodes_));
    CUDA_CHECK(cudaGraphInstantiate(&exec_, graph_, 0));
  } catch (...) {
    cudaGraphDestroy(graph_);
    throw;
  }
}

StreamGraph::~StreamGraph() {
  // Destructors must not throw: release what can be released. A launched graph may still run;
  // destroying its executable is then deferred by the driver until the launch completes.
  if (exec_) cudaGraphExecDestroy(exec_);
  if (graph_) cudaGraphDestroy(graph_);
}

void StreamGraph::launch() { CUDA_CHECK(cudaGraphLaunch(exec_, stream_)); }

}  // namespace uv::cuda
