// The libtorch side of package torch. Kept small on purpose: build a TorchScript module from
// ppml's own source and tensors, train it, run it, read its tensors, save it. It never parses
// a model file: ppml reads untrusted model files in Go (package ptfile) and passes tensors.
#include "shim.h"

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/Parallel.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>
#include <torch/version.h>
#include <dlfcn.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace {

// ---- memory accounting ----

std::atomic<int64_t> g_used{0};
std::atomic<int64_t> g_peak{0};
std::atomic<int64_t> g_limit{0};
// Set when the limit refused an allocation, so that the boundary reports the failure as a
// memory-limit failure however libtorch rewrapped the exception on its way up.
thread_local bool t_limit_hit = false;

void note_peak(int64_t now) {
	int64_t p = g_peak.load();
	while (now > p && !g_peak.compare_exchange_weak(p, now)) {
	}
}

bool reserve(int64_t n) {
	int64_t now = g_used.fetch_add(n) + n;
	int64_t lim = g_limit.load();
	if (lim > 0 && now > lim) {
		g_used.fetch_sub(n);
		t_limit_hit = true;
		return false;
	}
	note_peak(now);
	return true;
}

// Each block carries its size in a 64-byte header, so that data stays 64-byte aligned (as
// c10's allocator promises) and the deleter knows what to give back.
constexpr size_t kHeader = 64;

void counted_free(void *data) {
	if (data == nullptr) return;
	char *block = static_cast<char *>(data) - kHeader;
	int64_t n;
	std::memcpy(&n, block, sizeof n);
	g_used.fetch_sub(n);
	c10::free_cpu(block);
}

struct CountingAllocator final : public c10::Allocator {
	c10::DataPtr allocate(size_t nbytes) const override {
		if (nbytes == 0) return {nullptr, nullptr, &counted_free, c10::Device(c10::DeviceType::CPU)};
		int64_t n = static_cast<int64_t>(nbytes);
		if (!reserve(n)) {
			TORCH_CHECK(false, "ppml memory limit of ", g_limit.load(), " bytes reached (", g_used.load(),
			            " in use, ", n, " more requested)");
		}
		void *block = c10::alloc_cpu(nbytes + kHeader);  // throws when malloc fails
		std::memcpy(block, &n, sizeof n);
		void *data = static_cast<char *>(block) + kHeader;
		return {data, data, &counted_free, c10::Device(c10::DeviceType::CPU)};
	}
	c10::DeleterFnPtr raw_deleter() const override { return &counted_free; }
};

CountingAllocator g_allocator;

// ---- errors ----

ppml_status ok() { return {PPML_OK, nullptr}; }

ppml_status fail(int code, const std::string &msg) {
	char *m = static_cast<char *>(std::malloc(msg.size() + 1));
	if (m != nullptr) std::memcpy(m, msg.c_str(), msg.size() + 1);
	return {code, m};
}

// guard runs f and turns every exception into a status: the one place exceptions stop.
template <typename F>
ppml_status guard(F f) {
	t_limit_hit = false;
	try {
		return f();
	} catch (const c10::Error &e) {
		return fail(t_limit_hit ? PPML_ERR_MEMORY : PPML_ERR_TORCH, e.what_without_backtrace());
	} catch (const std::bad_alloc &e) {
		return fail(PPML_ERR_MEMORY, std::string("out of memory: ") + e.what());
	} catch (const std::exception &e) {
		return fail(t_limit_hit ? PPML_ERR_MEMORY : PPML_ERR_TORCH, e.what());
	} catch (...) {
		return fail(PPML_ERR_TORCH, "unknown C++ exception");
	}
}

// ---- models ----

struct Model {
	torch::jit::Module module;
	std::vector<torch::jit::Module> subs;
	std::unique_ptr<torch::optim::Optimizer> opt;
};

at::ScalarType dtype_of(int d) { return d == PPML_I64 ? at::kLong : at::kFloat; }

std::vector<c10::IValue> inputs_of(const ppml_tensor *in, int nin) {
	std::vector<c10::IValue> args;
	for (int i = 0; i < nin; i++) {
		TORCH_CHECK(in[i].ndim >= 0 && in[i].ndim <= PPML_MAX_DIMS, "input ", i, ": bad rank");
		std::vector<int64_t> shape(in[i].shape, in[i].shape + in[i].ndim);
		args.emplace_back(torch::from_blob(in[i].data, shape, dtype_of(in[i].dtype)));
	}
	return args;
}

void set_training(Model *m, bool on) {
	m->module.setattr("training", on);
	for (auto &s : m->subs) s.setattr("training", on);
}

at::Tensor run_forward(Model *m, const ppml_tensor *in, int nin) {
	auto out = m->module.forward(inputs_of(in, nin));
	TORCH_CHECK(out.isTensor(), "forward returned ", out.tagKind(), ", not a tensor");
	return out.toTensor();
}

std::mutex g_init_mu;
bool g_init_done = false;

}  // namespace

extern "C" {

ppml_status ppml_init(void) {
	std::lock_guard<std::mutex> lock(g_init_mu);
	if (g_init_done) return ok();
	return guard([] {
		c10::SetCPUAllocator(&g_allocator, /*priority=*/100);
#if defined(__GLIBC__)
		// A training step frees its activations and gradients and allocates them again at the
		// next batch. By default glibc serves blocks over 128 KiB with mmap and gives freed
		// memory at the top of a heap back to the kernel, so every batch faults the same pages
		// in again and the kernel zeroes them: about a quarter of the CPU time of a LeNet-5
		// epoch on this machine (docs/dl.md, "ppml bench dl"). Keep them instead (blocks under
		// 32 MiB from the heap, up to 256 MiB of free heap kept). The memory limit counts
		// libtorch's live tensors, not what malloc keeps; inside an enclave that memory is
		// committed anyway.
		mallopt(M_MMAP_THRESHOLD, 32 << 20);
		mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
		try {
			at::set_num_interop_threads(1);
		} catch (const c10::Error &) {
			// Already set or already used: the process keeps its pool.
		}
		g_init_done = true;
		return ok();
	});
}

const char *ppml_torch_version(void) { return TORCH_VERSION; }

ppml_status ppml_set_threads(int n) {
	return guard([n] {
		TORCH_CHECK(n >= 1, "threads must be at least 1, got ", n);
		at::set_num_threads(n);
		// Plain interpretation: every op runs its eager kernel with autograd recording it, like
		// a Python nn.Module; no profiling runs, fusion or graph rewrites that could change the
		// arithmetic between the first batches and the rest. The switch is thread-local in
		// libtorch, so it is set here, on the model's own thread: set once in ppml_init it held
		// only for the thread that happened to run ppml_init, and the one model that reused that
		// thread trained to different bits than every other.
		torch::jit::setGraphExecutorOptimize(false);
		// The pthreads build of OpenBLAS (Debian's default) has its own pool, sized by the
		// cores unless told; its symbol is looked up so that another BLAS also works.
		using setter = void (*)(int);
		if (auto f = reinterpret_cast<setter>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(n);
		return ok();
	});
}

void ppml_mem_set_limit(int64_t bytes) { g_limit.store(bytes > 0 ? bytes : 0); }
int64_t ppml_mem_limit_get(void) { return g_limit.load(); }
int64_t ppml_mem_used(void) { return g_used.load(); }
int64_t ppml_mem_peak(void) { return g_peak.load(); }
void ppml_mem_reset_peak(void) { g_peak.store(g_used.load()); }
int ppml_mem_reserve(int64_t bytes) { return reserve(bytes) ? 0 : -1; }
void ppml_mem_release(int64_t bytes) { g_used.fetch_sub(bytes); }

ppml_status ppml_model_new(const char *cls, int nsub, const char *const *sub_names,
                           const char *const *sub_classes, int nparams, const ppml_param *params,
                           const char *source, ppml_model **out) {
	return guard([&] {
		// A compilation unit of its own: class names never collide with another model's, so
		// nothing is mangled and the saved file is the same for the same model.
		auto cu = std::make_shared<torch::jit::CompilationUnit>();
		auto m = std::make_unique<Model>();
		m->module = torch::jit::Module(c10::QualifiedName(cls), cu, /*shouldMangle=*/false);
		m->module.register_attribute("training", c10::BoolType::get(), true);
		std::vector<std::string> names;
		// Submodules of one class (conv1 and conv2 are both Conv2d) share its type.
		std::map<std::string, c10::ClassTypePtr> types;
		for (int i = 0; i < nsub; i++) {
			std::string cname(sub_classes[i]);
			torch::jit::Module sub;
			auto t = types.find(cname);
			if (t == types.end()) {
				sub = torch::jit::Module(c10::QualifiedName(cname), cu, false);
				types[cname] = sub.type();
			} else {
				sub = torch::jit::Module(cu, t->second);
			}
			sub.register_attribute("training", c10::BoolType::get(), true);
			m->subs.push_back(sub);
			names.emplace_back(sub_names[i]);
		}
		for (int i = 0; i < nparams; i++) {
			const ppml_param &p = params[i];
			TORCH_CHECK(p.ndim >= 0 && p.ndim <= PPML_MAX_DIMS, "tensor ", p.name, ": bad rank");
			std::vector<int64_t> shape(p.shape, p.shape + p.ndim);
			at::Tensor t = torch::from_blob(const_cast<float *>(p.data), shape, at::kFloat).clone();
			if (!p.is_buffer) t.set_requires_grad(true);
			std::string name(p.name);
			auto dot = name.find('.');
			if (dot == std::string::npos) {
				m->module.register_parameter(name, t, p.is_buffer != 0);
				continue;
			}
			std::string sub = name.substr(0, dot), leaf = name.substr(dot + 1);
			size_t k = 0;
			while (k < names.size() && names[k] != sub) k++;
			TORCH_CHECK(k < names.size(), "tensor ", name, ": no submodule ", sub);
			m->subs[k].register_parameter(leaf, t, p.is_buffer != 0);
		}
		for (size_t k = 0; k < m->subs.size(); k++) m->module.register_module(names[k], m->subs[k]);
		m->module.define(source);
		*out = reinterpret_cast<ppml_model *>(m.release());
		return ok();
	});
}

void ppml_model_free(ppml_model *pm) {
	// Destructors of libtorch objects do not throw; the guard is for certainty.
	guard([pm] {
		delete reinterpret_cast<Model *>(pm);
		return ok();
	});
}

ppml_status ppml_model_optimizer(ppml_model *pm, int kind, double lr, double momentum, double weight_decay) {
	return guard([&] {
		auto *m = reinterpret_cast<Model *>(pm);
		std::vector<at::Tensor> params;
		for (const auto &p : m->module.parameters(/*recurse=*/true)) params.push_back(p);
		switch (kind) {
			case 0:
				m->opt = std::make_unique<torch::optim::SGD>(
				    params, torch::optim::SGDOptions(lr).momentum(momentum).weight_decay(weight_decay));
				break;
			case 1:
				m->opt = std::make_unique<torch::optim::Adam>(params,
				                                              torch::optim::AdamOptions(lr).weight_decay(weight_decay));
				break;
			default:
				return fail(PPML_ERR_ARG, "unknown optimizer kind " + std::to_string(kind));
		}
		return ok();
	});
}

ppml_status ppml_model_set_lr(ppml_model *pm, double lr) {
	return guard([&] {
		auto *m = reinterpret_cast<Model *>(pm);
		if (!m->opt) return fail(PPML_ERR_ARG, "no optimizer");
		for (auto &g : m->opt->param_groups()) g.options().set_lr(lr);
		return ok();
	});
}

ppml_status ppml_model_lr(ppml_model *pm, double *lr) {
	return guard([&] {
		auto *m = reinterpret_cast<Model *>(pm);
		if (!m->opt) return fail(PPML_ERR_ARG, "no optimizer");
		*lr = m->opt->param_groups().at(0).options().get_lr();
		return ok();
	});
}

ppml_status ppml_model_train_step(ppml_model *pm, const ppml_tensor *in, int nin, const int64_t *labels,
                                  int64_t n, double *loss) {
	return guard([&] {
		auto *m = reinterpret_cast<Model *>(pm);
		if (!m->opt) return fail(PPML_ERR_ARG, "no optimizer");
		set_training(m, true);
		at::Tensor y = torch::from_blob(const_cast<int64_t *>(labels), {n}, at::kLong);
		m->opt->zero_grad();
		at::Tensor out = run_forward(m, in, nin);
		TORCH_CHECK(out.dim() == 2 && out.size(0) == n, "forward returned shape ", out.sizes(), " for ", n,
		            " labels");
		at::Tensor l = torch::nll_loss(out, y);
		*loss = l.item<double>();
		if (!std::isfinite(*loss)) return ok();
		l.backward();
		m->opt->step();
		return ok();
	});
}

ppml_status ppml_model_forward(ppml_model *pm, const ppml_tensor *in, int nin, float *out, int64_t rows,
                               int64_t cols) {
	return guard([&] {
		auto *m = reinterpret_cast<Model *>(pm);
		torch::NoGradGuard no_grad;
		set_training(m, false);
		at::Tensor o = run_forward(m, in, nin);
		if (o.dim() != 2 || o.size(0) != rows || o.size(1) != cols || o.scalar_type() != at::kFloat) {
			std::ostringstream s;
			s << "forward returned " << o.scalar_type() << " of shape " << o.sizes() << ", want Float of shape ["
			  << rows << ", " << cols << "]";
			return fail(PPML_ERR_ARG, s.str());
		}
		o = o.contiguous();
		std::memcpy(out, o.data_ptr<float>(), sizeof(float) * rows * cols);
		return ok();
	});
}

ppml_status ppml_model_get(ppml_model *pm, const char *name, float *dst, int64_t numel) {
	return guard([&] {
		auto *m = reinterpret_cast<Model *>(pm);
		std::string want(name);
		auto copy = [&](const at::Tensor &value) {
			at::Tensor t = value.detach().contiguous();
			if (t.scalar_type() != at::kFloat || t.numel() != numel)
				return fail(PPML_ERR_ARG, "tensor " + want + " has " + std::to_string(t.numel()) +
				                              " elements, want " + std::to_string(numel));
			std::memcpy(dst, t.data_ptr<float>(), sizeof(float) * numel);
			return ok();
		};
		for (const auto &p : m->module.named_parameters(true))
			if (p.name == want) return copy(p.value);
		for (const auto &p : m->module.named_buffers(true))
			if (p.name == want) return copy(p.value);
		return fail(PPML_ERR_ARG, "no tensor " + want);
	});
}

ppml_status ppml_model_save(ppml_model *pm, int nextra, const char *const *extra_names,
                            const char *const *extra_data, const size_t *extra_lens, void **out,
                            size_t *out_len) {
	return guard([&] {
		auto *m = reinterpret_cast<Model *>(pm);
		set_training(m, false);
		torch::jit::ExtraFilesMap extra;
		for (int i = 0; i < nextra; i++) extra[extra_names[i]] = std::string(extra_data[i], extra_lens[i]);
		std::ostringstream os;
		m->module.save(os, extra);
		std::string s = os.str();
		void *buf = std::malloc(s.size());
		if (buf == nullptr) return fail(PPML_ERR_MEMORY, "out of memory copying the saved model");
		std::memcpy(buf, s.data(), s.size());
		*out = buf;
		*out_len = s.size();
		return ok();
	});
}

}  // extern "C"
