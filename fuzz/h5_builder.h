// Structure-aware HDF5 inputs: the fuzzer's bytes choose which attributes
// and datasets a well-formed HDF5 file holds, of which types, shapes
// (declared sizes up to 2^40 elements included, left unallocated) and
// values. The readers' own checks are the target, not libhdf5's parser.
#pragma once
#include <fuzzer/FuzzedDataProvider.h>
#include <hdf5.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace zoobench::fuzz {

class H5Builder {
 public:
  H5Builder(FuzzedDataProvider& p, const std::string& path) : p_(p) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    file_ = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  }
  ~H5Builder() {
    if (file_ >= 0) H5Fclose(file_);
  }
  bool ok() const { return file_ >= 0; }
  hid_t root() const { return file_; }

  // An attribute of a random kind: absent, string, integer, float or a 2-vector.
  void attribute(hid_t where, const char* name, const std::string& likely = "") {
    switch (p_.ConsumeIntegralInRange<int>(0, 5)) {
      case 0: return;
      case 1: string_attr(where, name, likely); return;
      case 2: string_attr(where, name, p_.ConsumeRandomLengthString(24)); return;
      case 3: {
        int64_t v = p_.ConsumeIntegral<int64_t>();
        numeric_attr(where, name, H5T_NATIVE_INT64, &v, 1);
        return;
      }
      case 4: {
        double v = p_.ConsumeFloatingPoint<double>();
        numeric_attr(where, name, H5T_NATIVE_DOUBLE, &v, 1);
        return;
      }
      default: {
        int32_t v[2] = {p_.ConsumeIntegral<int32_t>(), p_.ConsumeIntegral<int32_t>()};
        numeric_attr(where, name, H5T_NATIVE_INT32, v, 2);
      }
    }
  }

  void string_attr(hid_t where, const char* name, const std::string& value) {
    hid_t t = vlen_string();
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(where, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
    const char* c = value.c_str();
    if (a >= 0) H5Awrite(a, t, &c), H5Aclose(a);
    H5Sclose(s);
    H5Tclose(t);
  }

  // A dataset of a random type and shape; `rank_hint` / `dims_hint` make the
  // shapes a reader expects likely (N x C x 32 x 32 images, N labels).
  void dataset(hid_t where, const char* name, std::vector<hsize_t> dims_hint) {
    const int kind = p_.ConsumeIntegralInRange<int>(0, 7);
    if (kind == 0) return;  // absent
    std::vector<hsize_t> dims = dims_hint;
    if (kind == 1 || dims.empty()) {  // another shape
      dims.assign(p_.ConsumeIntegralInRange<size_t>(0, 5), 0);
      for (auto& d : dims) d = p_.ConsumeIntegralInRange<hsize_t>(0, 40);
    }
    if (kind == 2) {  // a declared size no machine holds: chunked, never written
      huge(where, name, dims);
      return;
    }
    if (kind == 3) {
      strings(where, name, dims.empty() ? 0 : dims[0]);
      return;
    }
    static const hid_t types[] = {H5T_NATIVE_UINT8, H5T_NATIVE_INT8, H5T_NATIVE_INT32, H5T_NATIVE_INT64,
                                  H5T_NATIVE_UINT64, H5T_NATIVE_FLOAT, H5T_NATIVE_DOUBLE};
    const hid_t type = kind >= 5 ? types[p_.ConsumeIntegralInRange<size_t>(0, 6)] : dims_type(name);
    hsize_t n = 1;
    for (auto d : dims) n *= d;
    if (n > (1u << 18)) return;
    std::vector<uint8_t> values(static_cast<size_t>(n) * H5Tget_size(type));
    for (size_t i = 0; i < values.size(); ++i) values[i] = p_.remaining_bytes() ? p_.ConsumeIntegral<uint8_t>() : uint8_t(i);
    hid_t s = dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    hid_t d = H5Dcreate2(where, name, type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (d >= 0) {
      if (n) H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
      attribute(d, "description", "fuzzed");
      H5Dclose(d);
    }
    H5Sclose(s);
  }

  FuzzedDataProvider& provider() { return p_; }

 private:
  static hid_t dims_type(const char* name) {
    const std::string n = name;
    return n == "labels" ? H5T_NATIVE_INT64 : H5T_NATIVE_UINT8;
  }

  static hid_t vlen_string() {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
  }

  void numeric_attr(hid_t where, const char* name, hid_t type, const void* v, hsize_t n) {
    hid_t s = n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nullptr);
    hid_t a = H5Acreate2(where, name, type, s, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) H5Awrite(a, type, v), H5Aclose(a);
    H5Sclose(s);
  }

  void huge(hid_t where, const char* name, std::vector<hsize_t> dims) {
    if (dims.empty()) dims.push_back(1);
    dims[0] = hsize_t(1) << p_.ConsumeIntegralInRange<int>(20, 40);
    std::vector<hsize_t> chunk(dims.size(), 1);
    hid_t s = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(pl, static_cast<int>(chunk.size()), chunk.data());
    hid_t d = H5Dcreate2(where, name, dims_type(name), s, H5P_DEFAULT, pl, H5P_DEFAULT);
    if (d >= 0) H5Dclose(d);
    H5Pclose(pl);
    H5Sclose(s);
  }

  void strings(hid_t where, const char* name, hsize_t n) {
    n = std::min<hsize_t>(n, 64);
    std::vector<std::string> values(n);
    std::vector<const char*> ptrs(n);
    for (hsize_t i = 0; i < n; ++i) values[i] = p_.ConsumeRandomLengthString(12), ptrs[i] = values[i].c_str();
    hid_t t = vlen_string();
    hid_t s = H5Screate_simple(1, &n, nullptr);
    hid_t d = H5Dcreate2(where, name, t, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (d >= 0) {
      if (n) H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data());
      H5Dclose(d);
    }
    H5Sclose(s);
    H5Tclose(t);
  }

  FuzzedDataProvider& p_;
  hid_t file_ = -1;
};

}  // namespace zoobench::fuzz
