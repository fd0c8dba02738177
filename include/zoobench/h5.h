// A thin RAII layer over the HDF5 C API (in the spirit of HighFive): every
// handle closes itself, and every failure becomes an IoError that carries
// HDF5's own error-stack message and the object's path.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <variant>
#include <vector>

namespace zoobench::h5 {

// Owns one hid_t and closes it with the matching H5?close function.
class Id {
 public:
  using Closer = herr_t (*)(hid_t);
  Id() = default;
  Id(hid_t id, Closer close) : id_(id), close_(close) {}
  ~Id() { reset(); }
  Id(Id&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = H5I_INVALID_HID; }
  Id& operator=(Id&& o) noexcept;
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;
  hid_t get() const { return id_; }
  void reset();
  hid_t release() {  // gives up ownership without closing
    hid_t id = id_;
    id_ = H5I_INVALID_HID;
    return id;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer close_ = nullptr;
};

// Throws IoError("<what>: <HDF5 error stack>") when status/id is negative.
hid_t check(hid_t id, const std::string& what);

template <class T> hid_t native_type();
template <> inline hid_t native_type<uint8_t>() { return H5T_NATIVE_UINT8; }
template <> inline hid_t native_type<int32_t>() { return H5T_NATIVE_INT32; }
template <> inline hid_t native_type<int64_t>() { return H5T_NATIVE_INT64; }
template <> inline hid_t native_type<uint64_t>() { return H5T_NATIVE_UINT64; }
template <> inline hid_t native_type<float>() { return H5T_NATIVE_FLOAT; }
template <> inline hid_t native_type<double>() { return H5T_NATIVE_DOUBLE; }

// Variable-length UTF-8 string type (h5py reads it back as str).
Id utf8_string_type();

// Something that carries attributes: a group, a file's root or a dataset.
class Object {
 public:
  hid_t id() const { return id_.get(); }
  std::string path() const;  // "/group/dataset", for error messages
  std::string file_name() const;
  std::string where(const std::string& name) const;  // "file:/path/name", for error messages

  void set_attr(const std::string& name, const std::string& value);
  void set_attr(const std::string& name, const char* value) { set_attr(name, std::string(value)); }
  void set_attr(const std::string& name, int64_t value);
  void set_attr(const std::string& name, double value);
  bool has_attr(const std::string& name) const;
  std::string attr_string(const std::string& name) const;
  int64_t attr_int(const std::string& name) const;
  double attr_double(const std::string& name) const;

 protected:
  Object() = default;
  explicit Object(Id id) : id_(std::move(id)) {}
  Id id_;
};

class Dataset : public Object {
 public:
  explicit Dataset(Id id) : Object(std::move(id)) {}
  std::vector<hsize_t> shape() const;
  hsize_t size() const;  // number of elements
  std::string type_name() const;  // "uint8", "int64", "float32", "string", "other"
  // Throws DataError when size() elements of element_bytes would not fit in
  // this machine's memory (every read checks, before allocating).
  void check_fits_in_memory(size_t element_bytes) const;
  // Reads the whole dataset, converting to T; throws if the stored type is
  // not a number (or not a string for read_strings).
  template <class T> std::vector<T> read() const;
  template <class T> void read_into(T* out, hsize_t expected_elements) const;
  std::vector<std::string> read_strings() const;
};

class Group : public Object {
 public:
  explicit Group(Id id) : Object(std::move(id)) {}
  Group create_group(const std::string& name);
  Group open_group(const std::string& name) const;
  bool has(const std::string& name) const;  // link exists (a path of links)
  std::vector<std::string> list() const;     // names of the direct members
  Dataset dataset(const std::string& name) const;

  // N-D numeric dataset; deflate 0 = uncompressed (contiguous, fastest to read).
  template <class T>
  Dataset write(const std::string& name, const T* data, const std::vector<hsize_t>& shape, int deflate = 0);
  template <class T>
  Dataset write(const std::string& name, const std::vector<T>& values) {
    return write(name, values.data(), {static_cast<hsize_t>(values.size())});
  }
  Dataset write_strings(const std::string& name, const std::vector<std::string>& values);
};

enum class Mode { ReadOnly, ReadWrite };

class File : public Group {
 public:
  static File create(const std::filesystem::path& path);  // truncates
  static File open(const std::filesystem::path& path, Mode mode = Mode::ReadOnly);
  const std::filesystem::path& filename() const { return path_; }
  void flush();
  void close();  // explicit close, so a failure can still throw

 private:
  File(Id id, std::filesystem::path path) : Group(std::move(id)), path_(std::move(path)) {}
  std::filesystem::path path_;
};

// A columnar table: one chunked, extensible 1-D dataset per column under a
// group, so `pandas.DataFrame({k: g[k][:] for k in g})` just works. Rows are
// buffered and written by flush() (also called by the destructor, quietly).
class Table {
 public:
  enum class Type { Int64, Float64, String };
  struct Column {
    std::string name;
    Type type;
    std::string description;  // stored as the column's "description" attribute
  };
  using Cell = std::variant<int64_t, double, std::string>;

  // Creates the group and columns, or opens them and checks they match.
  Table(Group& parent, const std::string& name, std::vector<Column> columns);
  ~Table();
  Table(const Table&) = delete;
  Table& operator=(const Table&) = delete;

  void append(std::vector<Cell> row);
  void flush();
  hsize_t rows() const { return stored_ + pending_; }
  Group& group() { return group_; }

 private:
  Group group_;
  std::vector<Column> columns_;
  std::vector<Dataset> datasets_;
  std::vector<std::vector<int64_t>> ints_;
  std::vector<std::vector<double>> doubles_;
  std::vector<std::vector<std::string>> strings_;
  hsize_t stored_ = 0, pending_ = 0;
};

}  // namespace zoobench::h5
