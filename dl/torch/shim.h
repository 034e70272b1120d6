// The C interface between package torch and libtorch (shim.cc). Every function that can fail
// returns a ppml_status: code 0 is success; otherwise msg is libtorch's message (malloc'd, the
// caller frees it). No C++ exception crosses this interface.
#ifndef PPML_TORCH_SHIM_H
#define PPML_TORCH_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
	PPML_OK = 0,
	PPML_ERR_TORCH = 1,   // libtorch raised an error
	PPML_ERR_MEMORY = 2,  // the memory limit refused an allocation
	PPML_ERR_ARG = 3,     // the arguments do not fit the model
};

typedef struct {
	int code;
	char *msg;
} ppml_status;

enum { PPML_F32 = 0, PPML_I64 = 1 };
#define PPML_MAX_DIMS 8

// A tensor view of caller-owned memory, valid for the duration of one call.
typedef struct {
	int dtype;
	int ndim;
	int64_t shape[PPML_MAX_DIMS];
	void *data;
} ppml_tensor;

// One named tensor of a model: "weight" on the root module, or "conv1.weight" on submodule
// conv1. Buffers are state that is saved but not trained.
typedef struct {
	const char *name;
	int ndim;
	int64_t shape[PPML_MAX_DIMS];
	const float *data;
	int is_buffer;
} ppml_param;

typedef struct ppml_model ppml_model;

// ppml_init prepares libtorch once per process: the counting allocator and one inter-op thread.
ppml_status ppml_init(void);
const char *ppml_torch_version(void);

// ppml_set_threads prepares the calling thread for a model: its intra-op threads (OpenMP,
// OpenBLAS) and the TorchScript graph executor without optimization passes (ops run as in eager
// mode), both of which libtorch keeps per thread.
ppml_status ppml_set_threads(int n);

// Memory accounting: every tensor libtorch allocates, and what callers reserve, counts against the
// limit (0: none); an allocation beyond it fails with PPML_ERR_MEMORY.
void ppml_mem_set_limit(int64_t bytes);
int64_t ppml_mem_limit_get(void);
int64_t ppml_mem_used(void);
int64_t ppml_mem_peak(void);
void ppml_mem_reset_peak(void);
// ppml_mem_reserve counts memory the caller holds itself (0 on success, -1 over the limit).
int ppml_mem_reserve(int64_t bytes);
void ppml_mem_release(int64_t bytes);

// ppml_model_new compiles a TorchScript module: root class `cls`, submodules (name, class),
// the tensors, then `source` (its methods, forward first) defined on the root.
ppml_status ppml_model_new(const char *cls, int nsub, const char *const *sub_names,
                           const char *const *sub_classes, int nparams, const ppml_param *params,
                           const char *source, ppml_model **out);
void ppml_model_free(ppml_model *m);

// ppml_model_optimizer attaches an optimizer over the parameters (not the buffers):
// kind 0 SGD (momentum, weight_decay), 1 Adam (weight_decay; betas 0.9, 0.999, eps 1e-8).
ppml_status ppml_model_optimizer(ppml_model *m, int kind, double lr, double momentum, double weight_decay);

// ppml_model_set_lr sets the learning rate of the attached optimizer, keeping its state (Adam's
// moments, SGD's momentum buffers): a learning-rate schedule. ppml_model_lr reads it back.
ppml_status ppml_model_set_lr(ppml_model *m, double lr);
ppml_status ppml_model_lr(ppml_model *m, double *lr);

// ppml_model_train_step runs forward on the inputs in training mode, the negative log-likelihood
// of the log-probabilities it returns against labels (n of them), and, if the loss is finite,
// backward and one optimizer step. *loss receives the loss either way.
ppml_status ppml_model_train_step(ppml_model *m, const ppml_tensor *in, int nin, const int64_t *labels,
                                  int64_t n, double *loss);

// ppml_model_forward runs forward without gradients; the output must be rows × cols float32.
ppml_status ppml_model_forward(ppml_model *m, const ppml_tensor *in, int nin, float *out, int64_t rows,
                               int64_t cols);

// ppml_model_get copies the tensor `name` (parameter or buffer) into dst (numel floats).
ppml_status ppml_model_get(ppml_model *m, const char *name, float *dst, int64_t numel);

// ppml_model_save writes the module as TorchScript (what torch.jit.load reads), with the extra
// files (stored under extra/ in the archive); *out is malloc'd.
ppml_status ppml_model_save(ppml_model *m, int nextra, const char *const *extra_names,
                            const char *const *extra_data, const size_t *extra_lens, void **out,
                            size_t *out_len);

#ifdef __cplusplus
}
#endif

#endif
