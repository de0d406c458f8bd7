// model_overlap.cpp -- fl_model_grads_overlap_begin/_end (bridge.h): the
// gradient all-reduce of a data-parallel step in buckets that start while
// backward still runs, the way PyTorch's DistributedDataParallel does it.
//
// Each trainable parameter's gradient accumulator (the AccumulateGrad node
// of the leaf) gets a post hook, FunctionPostHook, as DDP's C++ reducer adds
// them. Post hooks run after AccumulateGrad::apply has written .grad, once
// per backward even for a parameter used twice (the engine sums its inputs
// first): the same in libtorch 1.13 and 2.x (their FunctionPostHook has the
// same operator(); 2.x's grad_accumulator returns a c10::intrusive_ptr
// instead of a std::shared_ptr, hence the decltype below). The accumulators
// are kept alive here: a leaf's autograd meta holds its accumulator weakly,
// and without a strong reference the next forward would make a new one
// without the hook.
//
// The bridge knows nothing of MPI or NCCL: it calls the fl_flat_async_ops it
// is given. Those may only be called on the thread that began the step
// unless they say otherwise (MPI_THREAD_FUNNELED): CPU tensors' hooks run on
// the thread that called backward(); a hook that runs elsewhere only marks
// its bucket ready.
#include "trainer/torch/model.h"

#include <pthread.h>

#include <chrono>
#include <mutex>
#include <utility>

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/variable.h>

#include "trainer/torch/bridge_guard.h"

#ifdef FL_TORCH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace foldline
{

using AccumulatorPtr = decltype(torch::autograd::impl::grad_accumulator(std::declval<const torch::Tensor &>()));

struct Bucket {
    std::vector<size_t> params; // indices into fl_model::trainable, in reverse registration order
    int64_t offset = 0, count = 0;
    size_t pending = 0; // parameters not ready yet this step
    bool started = false;
    void *handle = nullptr;
};

struct Overlap {
    fl_model *m = nullptr;
    int64_t bucket_bytes = 0;
    std::vector<Bucket> buckets;
    std::vector<int> bucket_of;     // per parameter
    std::vector<int64_t> offset_of; // per parameter, in the flat buffer
    std::vector<AccumulatorPtr> accumulators;
    torch::Tensor flat, host; // host: a GPU model's buckets in host memory (host = 1)
    // This step's:
    bool armed = false, on_host = false;
    fl_flat_async_ops ops{};
    void *ctx = nullptr;
    pthread_t thread{};
    std::vector<char> ready; // per parameter
    size_t next = 0;         // the first bucket not started (they start in order)
    size_t tested = 0;       // the first started bucket not seen finished
    bool failed = false;
    fl_error err{};
    int started_in_backward = 0;
    double busy_s = 0;
    std::string misuse; // a hook that saw something impossible, reported by _end
    std::mutex mutex;   // hooks on autograd's device threads and the step's thread
#ifdef FL_TORCH_CUDA
    c10::optional<c10::cuda::CUDAStream> stream; // the stream of the step's thread, for the copies in hooks
#endif

    void build(int64_t bytes);
    void launch(Bucket &b);
    void launch_ready();
    void progress();
    void on_ready(size_t param);
};

namespace
{

double now_s()
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Holds the state weakly: the state holds the accumulators, which hold the hooks.
struct ReadyHook : torch::autograd::FunctionPostHook {
    std::weak_ptr<Overlap> state;
    size_t param;
    ReadyHook(std::weak_ptr<Overlap> s, size_t p) : state(std::move(s)), param(p) {}
    torch::autograd::variable_list operator()(const torch::autograd::variable_list &outputs,
                                              const torch::autograd::variable_list & /*inputs*/) override
    {
        if (auto s = state.lock()) {
            std::lock_guard<std::mutex> lock(s->mutex);
            try {
                s->on_ready(param);
            } catch (const std::exception &e) { // never through autograd's engine: _end reports it
                s->failed = true;
                torch_error(&s->err, e.what());
            }
        }
        return outputs;
    }
};

} // namespace

// Buckets over the parameters in reverse order, each closed once it holds
// `bytes` or more; the flat buffer follows the buckets.
void Overlap::build(int64_t bytes)
{
    bucket_bytes = bytes;
    buckets.clear();
    size_t n = m->trainable.size();
    bucket_of.assign(n, -1);
    offset_of.assign(n, 0);
    int64_t off = 0;
    for (size_t k = n; k-- > 0;) {
        if (buckets.empty() || buckets.back().count * (int64_t)sizeof(float) >= bytes) {
            buckets.emplace_back();
            buckets.back().offset = off;
        }
        Bucket &b = buckets.back();
        b.params.push_back(k);
        bucket_of[k] = (int)buckets.size() - 1;
        offset_of[k] = off;
        b.count += m->trainable[k].numel();
        off += m->trainable[k].numel();
    }
    flat = torch::empty({off}, torch::TensorOptions(torch::kFloat32).device(m->device));
    host = torch::Tensor();
}

// Copies the bucket's gradients (zeros for a missing one) into its slice and
// starts its collective.
void Overlap::launch(Bucket &b)
{
    torch::NoGradGuard no_grad;
#ifdef FL_TORCH_CUDA
    c10::optional<c10::cuda::CUDAStreamGuard> guard;
    if (stream)
        guard.emplace(*stream);
#endif
    for (size_t k : b.params) {
        const torch::Tensor &p = m->trainable[k];
        torch::Tensor dst = flat.narrow(0, offset_of[k], p.numel());
        if (p.grad().defined())
            dst.copy_(p.grad().reshape({-1}));
        else
            dst.zero_(); // a rank whose shard was empty, or a parameter the loss did not reach
    }
    float *buf;
    if (on_host && !flat.is_cpu()) {
        if (!host.defined())
            host = torch::empty({flat.numel()}, torch::kFloat32);
        host.narrow(0, b.offset, b.count).copy_(flat.narrow(0, b.offset, b.count)); // synchronises
        buf = host.data_ptr<float>() + b.offset;
    } else {
        buf = flat.data_ptr<float>() + b.offset;
    }
    b.handle = nullptr;
    fl_code rc = ops.start(buf, b.count, ctx, &b.handle, &err);
    b.started = true; // a failed start's handle is waited for too (it may hold started pieces)
    if (rc)
        failed = true;
}

// Starts the ready buckets, in order, from the first one not started.
void Overlap::launch_ready()
{
    while (!failed && next < buckets.size() && buckets[next].pending == 0)
        launch(buckets[next++]);
}

// Lets the started collectives progress (MPI progresses a nonblocking
// collective only inside MPI calls, unless it has a progress thread).
void Overlap::progress()
{
    if (!ops.test)
        return;
    while (tested < next && ops.test(buckets[tested].handle, ctx))
        tested++;
}

void Overlap::on_ready(size_t k)
{
    if (!armed || k >= ready.size())
        return;
    bool here = pthread_equal(pthread_self(), thread) != 0;
    if (ready[k]) { // a second backward before _end
        if (buckets[bucket_of[k]].started && misuse.empty())
            misuse = "a gradient changed after its bucket's all-reduce had started (two backward passes in one "
                     "data-parallel step)";
        return;
    }
    ready[k] = 1;
    Bucket &b = buckets[bucket_of[k]];
    b.pending--;
    if (!here && !ops.any_thread)
        return; // not on the step's thread: _end starts it
    double t0 = now_s();
    size_t before = next;
    launch_ready();
    started_in_backward += (int)(next - before);
    progress();
    busy_s += now_s() - t0;
}

} // namespace foldline

using namespace foldline;

namespace
{

void overlap_begin(fl_model &m, bool host, const fl_flat_async_ops &ops, void *ctx, int64_t bucket_bytes)
{
    if (!m.overlap) {
        m.overlap = std::make_shared<Overlap>();
        m.overlap->m = &m;
    }
    Overlap &s = *m.overlap;
    if (s.accumulators.size() != m.trainable.size()) {
        s.accumulators.clear();
        std::weak_ptr<Overlap> weak = m.overlap;
        for (size_t k = 0; k < m.trainable.size(); k++) {
            AccumulatorPtr acc = torch::autograd::impl::grad_accumulator(m.trainable[k]);
            if (!acc)
                throw std::runtime_error("a trainable parameter has no gradient accumulator");
            acc->add_post_hook(std::make_unique<ReadyHook>(weak, k));
            s.accumulators.push_back(std::move(acc));
        }
    }
    if (s.bucket_bytes != bucket_bytes || !s.flat.defined() || s.flat.device() != m.device)
        s.build(bucket_bytes);
    s.ops = ops;
    s.ctx = ctx;
    s.on_host = host;
    s.thread = pthread_self();
    s.ready.assign(m.trainable.size(), 0);
    for (auto &b : s.buckets) {
        b.pending = b.params.size();
        b.started = false;
        b.handle = nullptr;
    }
    s.next = s.tested = 0;
    s.failed = false;
    s.err = fl_error{};
    s.started_in_backward = 0;
    s.busy_s = 0;
    s.misuse.clear();
#ifdef FL_TORCH_CUDA
    s.stream = c10::nullopt;
    if (m.device.is_cuda())
        s.stream = c10::cuda::getCurrentCUDAStream(m.device.index());
#endif
    s.armed = true;
}

fl_code overlap_end(fl_model &m, fl_overlap_stats *stats, fl_error *err)
{
    Overlap &s = *m.overlap;
    s.armed = false;
    // The buckets backward did not start, in order: every rank starts the
    // same buckets in the same order, whatever its backward reached.
    while (!s.failed && s.next < s.buckets.size())
        s.launch(s.buckets[s.next++]);
    fl_code rc = FL_OK;
    if (s.failed) {
        *err = s.err;
        rc = err->code ? err->code : FL_EMPI;
    }
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < s.next; i++) {
        Bucket &b = s.buckets[i];
        if (!b.started)
            continue;
        fl_error werr{};
        fl_code wrc = s.ops.wait(b.handle, s.ctx, &werr);
        b.started = false;
        b.handle = nullptr;
        if (wrc && !rc) {
            *err = werr;
            rc = wrc;
        }
        if (rc)
            continue; // the others are still waited for: none stays in flight on our buffer
        if (s.on_host && !s.flat.is_cpu())
            s.flat.narrow(0, b.offset, b.count).copy_(s.host.narrow(0, b.offset, b.count));
        for (size_t k : b.params) {
            torch::Tensor &p = m.trainable[k];
            torch::Tensor src = s.flat.narrow(0, s.offset_of[k], p.numel()).view(p.sizes());
            if (p.grad().defined())
                p.mutable_grad().copy_(src);
            else
                p.mutable_grad() = src.clone();
        }
    }
    if (!rc && !s.misuse.empty())
        rc = fl_fail(err, FL_EINTERNAL, "gradient buckets: %s", s.misuse.c_str());
    if (stats)
        *stats = fl_overlap_stats{(int)s.buckets.size(), s.started_in_backward, s.busy_s};
    return rc;
}

} // namespace

extern "C" fl_code fl_model_grads_overlap_begin(fl_model *m, int host, const fl_flat_async_ops *ops, void *ctx,
                                                int64_t bucket_bytes, fl_error *err)
{
    if (!m || !ops || !ops->start || !ops->wait || bucket_bytes < 1)
        return fl_fail(err, FL_EINTERNAL, "fl_model_grads_overlap_begin: model, start, wait and bucket_bytes needed");
    if (m->overlap && m->overlap->armed)
        return fl_fail(err, FL_EINTERNAL, "fl_model_grads_overlap_begin: the previous step was not ended");
    FL_TORCH_GUARD(err, overlap_begin(*m, host != 0, *ops, ctx, bucket_bytes));
}

extern "C" fl_code fl_model_grads_overlap_end(fl_model *m, fl_overlap_stats *stats, fl_error *err)
{
    if (!m || !m->overlap || !m->overlap->armed)
        return fl_fail(err, FL_EINTERNAL, "fl_model_grads_overlap_end: no step was begun");
    FL_TORCH_GUARD(err, return overlap_end(*m, stats, err));
}
