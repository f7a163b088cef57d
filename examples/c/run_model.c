/* Calls a torchlift artifact through its C API on one input read from a
 * raw little-endian f32 file, and prints every output element.
 *
 * Build against a static or a shared library made by
 * `torchlift compile MODEL.pt2 -o out/libmodel.a --emit staticlib`
 * (or `-o out/libmodel.so`, the default `--emit sharedlib`):
 *
 *   cc -O2 -I out run_model.c out/libmodel.a -lm -lpthread -ldl -o run_model
 *   cc -O2 -I out run_model.c -L out -lmodel -Wl,-rpath,out -o run_model
 *
 * Usage: run_model INPUT.f32 DIM0 DIM1 ...
 * With an artifact compiled with `--weights external`, set TORCHLIFT_WEIGHTS
 * to its side file (out/model.weights).
 */
#include <stdio.h>
#include <stdlib.h>

#include "torchlift.h"

static int fail(const char *what) {
  fprintf(stderr, "error: %s: %s\n", what, tl_last_error());
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s INPUT.f32 DIM...\n", argv[0]);
    return 2;
  }
  int rank = argc - 2;
  int64_t shape[8];
  long n = 1;
  for (int i = 0; i < rank && i < 8; i++) {
    shape[i] = atol(argv[i + 2]);
    n *= shape[i];
  }
  float *data = malloc(sizeof(float) * (size_t)n);
  FILE *f = fopen(argv[1], "rb");
  if (!f || fread(data, sizeof(float), (size_t)n, f) != (size_t)n) {
    fprintf(stderr, "error: reading %s\n", argv[1]);
    return 1;
  }
  fclose(f);

  tl_model *model;
  tl_session *session;
  const char *weights = getenv("TORCHLIFT_WEIGHTS");
  if (weights) {
    if (tl_model_create_with_weights(&torchlift_artifact, weights, 0, &model))
      return fail("tl_model_create_with_weights");
  } else if (tl_model_create(&torchlift_artifact, 0, &model)) {
    return fail("tl_model_create");
  }
  /* The signature, on stderr: names, dtypes, and dims (symbolic ones with
   * their ranges). */
  for (int k = 0; k < tl_model_count(model, 0); k++) {
    tl_io_info io;
    if (tl_model_io(model, 0, k, &io)) return fail("tl_model_io");
    fprintf(stderr, "input %s: dtype %d [", io.name, io.dtype);
    for (int i = 0; i < io.rank; i++) {
      if (io.dim_names[i])
        fprintf(stderr, "%s%s in %lld..%lld", i ? ", " : "", io.dim_names[i],
                (long long)io.dim_min[i], (long long)io.dim_max[i]);
      else
        fprintf(stderr, "%s%lld", i ? ", " : "", (long long)io.dims[i]);
    }
    fprintf(stderr, "]\n");
  }
  if (tl_session_create(model, &session)) return fail("tl_session_create");
  tl_tensor in = {TL_F32, rank, shape, data};
  if (tl_session_run(session, &in, 1)) return fail("tl_session_run");
  int outputs = tl_model_count(model, 1);
  for (int k = 0; k < outputs; k++) {
    tl_tensor out;
    if (tl_session_output(session, k, &out)) return fail("tl_session_output");
    long m = 1;
    for (int i = 0; i < out.rank; i++) m *= out.shape[i];
    printf("output %d dtype %d rank %d:", k, out.dtype, out.rank);
    for (long i = 0; i < m && out.dtype == TL_F32; i++) printf(" %.9g", ((float *)out.data)[i]);
    printf("\n");
  }
  /* A wrong input is an error with a message, not a crash. */
  int64_t bad_shape[1] = {3};
  tl_tensor bad = {TL_F32, 1, bad_shape, data};
  if (tl_session_run(session, &bad, 1) == TL_OK) {
    fprintf(stderr, "error: a wrong input was accepted\n");
    return 1;
  }
  printf("refused: %s\n", tl_last_error());
  tl_session_destroy(session);
  tl_model_destroy(model);
  free(data);
  return 0;
}
