// model_comm.cpp -- the data-parallel entry points of bridge.h: packing
// gradients, parameters and buffers into one flat float32 buffer for a
// collective that dist/ runs (MPI on the host, NCCL on the GPU), and the CUDA
// stream those collectives run on. The bridge knows nothing of MPI or NCCL:
// it calls the C function it is given, once per call, on the whole buffer.
#include "trainer/torch/model.h"

#include "trainer/torch/bridge_guard.h"

#ifdef FL_TORCH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

namespace foldline
{
namespace
{

// The buffer of count float32 values on the model's device, reused between
// steps (a ResNet-50's gradients are 100 MB: no allocation per step).
torch::Tensor &flat_buffer(fl_model &m, int64_t count)
{
    if (!m.flat.defined() || m.flat.numel() != count || m.flat.device() != m.device)
        m.flat = torch::empty({count}, torch::TensorOptions(torch::kFloat32).device(m.device));
    return m.flat;
}

// Runs fn on flat, through a host copy when the caller wants host memory and
// the model lives on a GPU.
fl_code run_collective(torch::Tensor &flat, bool host, fl_flat_collective_fn fn, void *ctx, fl_error *err)
{
    if (!host || flat.is_cpu())
        return fn(flat.data_ptr<float>(), flat.numel(), ctx, err);
    torch::Tensor h = flat.to(torch::kCPU); // synchronises with the device
    if (fl_code rc = fn(h.data_ptr<float>(), h.numel(), ctx, err))
        return rc;
    flat.copy_(h);
    return FL_OK;
}

// The gradients of the trainable parameters of models ms, in that order, in
// one buffer (the first model's) and one collective.
fl_code grads_reduce(fl_model *const *ms, int n, bool host, fl_flat_collective_fn fn, void *ctx, fl_error *err)
{
    torch::NoGradGuard no_grad;
    int64_t count = 0;
    for (int i = 0; i < n; i++)
        for (const auto &p : ms[i]->trainable)
            count += p.numel();
    if (count == 0)
        return FL_OK;
    torch::Tensor &flat = flat_buffer(*ms[0], count);
    int64_t off = 0;
    for (int i = 0; i < n; i++)
        for (const auto &p : ms[i]->trainable) {
            torch::Tensor dst = flat.narrow(0, off, p.numel());
            if (p.grad().defined())
                dst.copy_(p.grad().reshape({-1}));
            else
                dst.zero_(); // a rank whose shard was empty, or a parameter the loss did not reach
            off += p.numel();
        }
    if (fl_code rc = run_collective(flat, host, fn, ctx, err))
        return rc;
    off = 0;
    for (int i = 0; i < n; i++)
        for (auto &p : ms[i]->trainable) {
            torch::Tensor src = flat.narrow(0, off, p.numel()).view(p.sizes());
            if (p.grad().defined())
                p.mutable_grad().copy_(src);
            else
                p.mutable_grad() = src.clone();
            off += p.numel();
        }
    return FL_OK;
}

// A frozen backbone's tensors never change and every rank builds the same:
// only the head's travel then.
std::vector<torch::Tensor> state_tensors(fl_model &m, int what)
{
    std::vector<torch::Tensor> v;
    torch::nn::Module &mod = m.freeze_backbone ? static_cast<torch::nn::Module &>(*m.net->head) : *m.net;
    if (what & FL_STATE_PARAMS)
        for (const auto &p : mod.parameters())
            v.push_back(p);
    if (what & FL_STATE_BUFFERS)
        for (const auto &b : mod.buffers())
            if (b.is_floating_point())
                v.push_back(b);
    return v;
}

fl_code state_broadcast(fl_model &m, int what, bool host, fl_flat_collective_fn fn, void *ctx, fl_error *err)
{
    torch::NoGradGuard no_grad; // parameters are written in place
    std::vector<torch::Tensor> tensors = state_tensors(m, what);
    int64_t count = 0;
    for (const auto &t : tensors)
        count += t.numel();
    if (count == 0)
        return FL_OK;
    torch::Tensor &flat = flat_buffer(m, count);
    int64_t off = 0;
    for (const auto &t : tensors) {
        flat.narrow(0, off, t.numel()).copy_(t.reshape({-1}));
        off += t.numel();
    }
    if (fl_code rc = run_collective(flat, host, fn, ctx, err))
        return rc;
    off = 0;
    for (auto &t : tensors) {
        t.copy_(flat.narrow(0, off, t.numel()).view(t.sizes()));
        off += t.numel();
    }
    return FL_OK;
}

} // namespace
} // namespace foldline

using namespace foldline;

extern "C" fl_code fl_model_grads_reduce(fl_model *m, int host, fl_flat_collective_fn fn, void *ctx, fl_error *err)
{
    if (!m || !fn)
        return fl_fail(err, FL_EINTERNAL, "fl_model_grads_reduce: model and fn must not be NULL");
    FL_TORCH_GUARD(err, return grads_reduce(&m, 1, host != 0, fn, ctx, err));
}

extern "C" fl_code fl_models_grads_reduce(fl_model *const *ms, int n, int host, fl_flat_collective_fn fn, void *ctx,
                                          fl_error *err)
{
    if (!ms || n < 1 || !fn)
        return fl_fail(err, FL_EINTERNAL, "fl_models_grads_reduce: models and fn must be given");
    for (int i = 0; i < n; i++)
        if (!ms[i] || ms[i]->device != ms[0]->device)
            return fl_fail(err, FL_EINTERNAL, "fl_models_grads_reduce: model %d missing or on another device", i);
    FL_TORCH_GUARD(err, return grads_reduce(ms, n, host != 0, fn, ctx, err));
}

extern "C" fl_code fl_model_state_broadcast(fl_model *m, int what, int host, fl_flat_collective_fn fn, void *ctx,
                                            fl_error *err)
{
    if (!m || !fn || !(what & (FL_STATE_PARAMS | FL_STATE_BUFFERS)))
        return fl_fail(err, FL_EINTERNAL, "fl_model_state_broadcast: model, fn and what must be given");
    FL_TORCH_GUARD(err, return state_broadcast(*m, what, host != 0, fn, ctx, err));
}

extern "C" void *fl_model_cuda_stream(const fl_model *m)
{
#ifdef FL_TORCH_CUDA
    try {
        if (m && m->device.is_cuda())
            return (void *)c10::cuda::getCurrentCUDAStream(m->device.index()).stream();
    } catch (...) {
    }
#else
    (void)m;
#endif
    return nullptr;
}
