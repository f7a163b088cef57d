/* The kernel of the custom op `mylib::add_one_(Tensor(a!) x) -> ()`, linked
 * by symbol into a program that links an artifact calling it
 * (`torchlift compile MODEL.pt2 --custom-op "mylib::add_one_(Tensor(a!) x) -> ()"`):
 *
 *   cc -O2 -I out run_model.c add_one.c out/libmodel.a -lm -lpthread -ldl -o run_model
 *
 * It gets the op's tensor arguments in schema order and writes the mutated
 * one in place. */
#include "torchlift.h"

int32_t torchlift_op_mylib__add_one_(tl_tensor *args, int32_t n) {
  if (n != 1 || args[0].dtype != TL_F32) return 1;
  int64_t m = 1;
  for (int i = 0; i < args[0].rank; i++) m *= args[0].shape[i];
  float *x = (float *)args[0].data;
  for (int64_t i = 0; i < m; i++) x[i] += 1.0f;
  return 0;
}
