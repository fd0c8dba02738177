// Tensors into HDF5: the bridge between ATen and the RAII layer of h5.h.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>

#include "zoobench/h5.h"

namespace zoobench::h5 {

// Opens (creating as needed) the group at a slash-separated path below the file's root.
Group ensure_group(Group& root, const std::string& path);
// int64 and float64 tensors as they are, everything else as float32; a "description" attribute.
void write_matrix(Group& g, const std::string& name, const at::Tensor& t, const char* description);
// Integers as int64, 8-byte floats as float64, other numbers as float32; the stored shape.
at::Tensor read_matrix(const Group& g, const std::string& name);

}  // namespace zoobench::h5
