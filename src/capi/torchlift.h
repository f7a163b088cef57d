/* torchlift.h: the C API of torchlift artifacts.
 *
 * An artifact (`torchlift compile MODEL.pt2 -o NAME --emit ...`) exports one
 * data symbol, `torchlift_artifact`, which describes the compiled model: its
 * code, its program and its weights. Create a model from it, then one
 * session per concurrent caller:
 *
 *     tl_model *m; tl_session *s;
 *     if (tl_model_create(&torchlift_artifact, 0, &m)) die(tl_last_error());
 *     if (tl_session_create(m, &s)) die(tl_last_error());
 *     tl_tensor in = { TL_F32, 2, shape, data };
 *     if (tl_session_run(s, &in, 1)) die(tl_last_error());
 *     tl_tensor out; tl_session_output(s, 0, &out);
 *     tl_session_destroy(s); tl_model_destroy(m);
 *
 * Thread safety: a model is immutable after tl_model_create, and any number
 * of threads may create sessions from it and run them at once. A session
 * is used by one thread at a time. It holds the buffers that persist
 * across its calls, as in PyTorch, and the outputs of its last call, which
 * stay valid until its next call or its destruction. Destroy every session
 * before its model.
 *
 * Weights: by default they are read-only data of the artifact. An artifact
 * compiled with `--weights external` keeps them in a side file
 * (`NAME.weights`, beside it): create its model with
 * tl_model_create_with_weights (the file is mapped read-only) or
 * tl_model_create_from_buffer (its bytes, which must outlive the model).
 * Loading reads only the weights' index; tl_model_verify_weights reads
 * every byte and checks the checksum recorded when compiling.
 *
 * Errors: functions that can fail return a status (TL_OK is 0). The
 * message of the last failure on the calling thread is tl_last_error(),
 * valid until that thread's next failure. An input whose dtype, rank or
 * dims do not match the model's signature is refused, naming the input and
 * the dim. An artifact built for CPU features this machine lacks is
 * refused by tl_model_create.
 *
 * The JSON manifest written beside the artifact lists the signature:
 * input and output names, dtypes, and dims (fixed, or symbolic with their
 * ranges).
 */
#ifndef TORCHLIFT_H
#define TORCHLIFT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { TL_OK = 0, TL_ERROR = 1, TL_INVALID_ARGUMENT = 2 };

typedef enum tl_dtype {
  TL_F32 = 0, TL_F64 = 1, TL_F16 = 2, TL_BF16 = 3, TL_I64 = 4,
  TL_I32 = 5, TL_I16 = 6, TL_I8 = 7, TL_U8 = 8, TL_BOOL = 9
} tl_dtype;

/* A dense, row-major tensor: `shape` has `rank` entries. */
typedef struct tl_tensor {
  int32_t dtype; /* a tl_dtype */
  int32_t rank;
  const int64_t *shape;
  void *data;
} tl_tensor;

/* The descriptor an artifact exports; read it only through tl_model_create. */
typedef struct tl_artifact {
  uint64_t magic;
  uint32_t abi_version;
  uint32_t features;
  int32_t (*entry)(const void *ctx);
  const uint8_t *program;
  uint64_t program_len;
  const uint8_t *weights;      /* NULL when the weights are external */
  uint64_t weights_len;
  const uint8_t *weights_file; /* the side file's name, or NULL */
  uint64_t weights_file_len;
  uint64_t fingerprint;
  const struct tl_custom_op *custom_ops; /* the custom ops it calls */
  uint64_t n_custom_ops;
} tl_artifact;

/* A custom operator's kernel, linked by symbol. An artifact whose program
 * calls `ns::name` (declared with `torchlift compile --custom-op SCHEMA`)
 * refers to
 *
 *     int32_t torchlift_op_ns__name(tl_tensor *args, int32_t n);
 *
 * (`torchlift_op_ns__name_OVERLOAD` for an overload other than default),
 * which the program linking the artifact defines. It receives the op's
 * tensor arguments in schema order, as dense copies, writes the ones the
 * schema marks mutated (`Tensor(a!)`) in place, and returns 0 on success
 * (anything else fails the call). It may be called from several threads
 * at once. Ops with results of their own need a Rust kernel. */
typedef int32_t (*tl_op_kernel)(tl_tensor *args, int32_t n);

typedef struct tl_custom_op {
  const uint8_t *schema; /* the torch schema, UTF-8, not NUL-terminated */
  uint64_t schema_len;
  tl_op_kernel kernel;
} tl_custom_op;

extern const tl_artifact torchlift_artifact;

typedef struct tl_model tl_model;
typedef struct tl_session tl_session;

/* threads: the size of the model's thread pool (0: one per core). */
int32_t tl_model_create(const tl_artifact *artifact, int32_t threads, tl_model **out);
/* External weights from the side file at `path`, mapped read-only. */
int32_t tl_model_create_with_weights(const tl_artifact *artifact, const char *path,
                                     int32_t threads, tl_model **out);
/* External weights from `len` bytes at `data`, valid until tl_model_destroy. */
int32_t tl_model_create_from_buffer(const tl_artifact *artifact, const void *data,
                                    uint64_t len, int32_t threads, tl_model **out);
/* Reads every weight byte and checks it against the recorded checksum. */
int32_t tl_model_verify_weights(const tl_model *model);
void tl_model_destroy(tl_model *model);
/* The number of user inputs (outputs == 0) or outputs (outputs != 0). */
int32_t tl_model_count(const tl_model *model, int32_t outputs);

/* One input or output of the signature; the model owns every pointer. */
typedef struct tl_io_info {
  const char *name;
  int32_t dtype; /* a tl_dtype */
  int32_t rank;
  const int64_t *dims;            /* each dim's size, -1 where symbolic */
  const char *const *dim_names;   /* the symbol or expression ("s0",
                                     "2*s0") of each symbolic dim, else NULL */
  const int64_t *dim_min;         /* each dim's range; max -1: unbounded */
  const int64_t *dim_max;
} tl_io_info;

/* Describes input `i` (outputs == 0) or output `i` (outputs != 0). */
int32_t tl_model_io(const tl_model *model, int32_t outputs, int32_t i, tl_io_info *out);

int32_t tl_session_create(const tl_model *model, tl_session **out);
void tl_session_destroy(tl_session *session);
/* Runs on `n` inputs in signature order. */
int32_t tl_session_run(tl_session *session, const tl_tensor *inputs, int32_t n);
/* Output `i` of the last run, owned by the session. */
int32_t tl_session_output(const tl_session *session, int32_t i, tl_tensor *out);

const char *tl_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* TORCHLIFT_H */
