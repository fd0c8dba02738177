#include "zoobench/h5_tensor.h"

#include <ATen/ATen.h>

namespace zoobench::h5 {

Group ensure_group(Group& root, const std::string& path) {
  Group g = root.open_group("/");
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t next = path.find('/', pos);
    std::string part = path.substr(pos, next == std::string::npos ? std::string::npos : next - pos);
    if (!part.empty()) g = g.has(part) ? g.open_group(part) : g.create_group(part);
    if (next == std::string::npos) break;
    pos = next + 1;
  }
  return g;
}

void write_matrix(Group& g, const std::string& name, const at::Tensor& t, const char* description) {
  at::Tensor c = t.contiguous();
  std::vector<hsize_t> shape;
  for (int64_t d = 0; d < c.dim(); ++d) shape.push_back(static_cast<hsize_t>(c.size(d)));
  Dataset d = c.scalar_type() == at::kLong     ? g.write(name, c.data_ptr<int64_t>(), shape)
              : c.scalar_type() == at::kDouble ? g.write(name, c.data_ptr<double>(), shape)
                                               : g.write(name, c.to(at::kFloat).contiguous().data_ptr<float>(), shape);
  d.set_attr("description", description);
}

}  // namespace zoobench::h5

namespace zoobench::h5 {

at::Tensor read_matrix(const Group& g, const std::string& name) {
  Dataset d = g.dataset(name);
  std::vector<int64_t> shape;
  for (hsize_t s : d.shape()) shape.push_back(static_cast<int64_t>(s));
  H5T_class_t cls = H5Tget_class(Id(H5Dget_type(d.id()), H5Tclose).get());
  size_t width = H5Tget_size(Id(H5Dget_type(d.id()), H5Tclose).get());
  if (cls == H5T_INTEGER) {
    at::Tensor t = at::empty(shape, at::kLong);
    d.read_into(t.data_ptr<int64_t>(), d.size());
    return t;
  }
  if (cls == H5T_FLOAT && width == 8) {
    at::Tensor t = at::empty(shape, at::kDouble);
    d.read_into(t.data_ptr<double>(), d.size());
    return t;
  }
  at::Tensor t = at::empty(shape, at::kFloat);
  d.read_into(t.data_ptr<float>(), d.size());
  return t;
}

}  // namespace zoobench::h5
