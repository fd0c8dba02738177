#include "zoobench/h5.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "zoobench/error.h"

namespace zoobench::h5 {
namespace {

// HDF5 prints its error stack to stderr by default; we fold it into the
// exception instead. The setting is per thread in thread-safe builds.
void silence_hdf5() {
  thread_local bool done = false;
  if (!done) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    done = true;
  }
}

herr_t collect(unsigned, const H5E_error2_t* err, void* data) {
  auto* msgs = static_cast<std::vector<std::string>*>(data);
  if (!err->desc || !*err->desc) return 0;
  std::string m = err->desc;
  // The file driver's entry is a paragraph ("file write failed: time = <ctime
  // with its newline>, filename = ..., errno = 28, error message = 'No space
  // left on device', buf = ..."): the operating system's message is the news.
  const std::string key = "error message = '";
  if (auto at = m.find(key); at != std::string::npos) {
    auto end = m.find('\'', at + key.size());
    m = m.substr(0, m.find(':')) + ": " + m.substr(at + key.size(), end == std::string::npos ? end : end - at - key.size());
  }
  for (char& c : m)
    if (c == '\n' || c == '\r') c = ' ';  // one error, one line
  msgs->push_back(m);
  return 0;
}

std::string hdf5_message() {
  std::vector<std::string> msgs;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect, &msgs);
  H5Eclear2(H5E_DEFAULT);
  msgs.erase(std::unique(msgs.begin(), msgs.end()), msgs.end());
  // The deepest entries say what really went wrong (errno, missing object).
  if (msgs.size() > 3) msgs.erase(msgs.begin(), msgs.end() - 3);
  std::string out;
  for (const auto& m : msgs) out += (out.empty() ? "" : "; ") + m;
  return out.empty() ? "unknown HDF5 error" : out;
}

Id dataspace(const std::vector<hsize_t>& shape, const std::vector<hsize_t>* maxshape = nullptr) {
  if (shape.empty()) return {check(H5Screate(H5S_SCALAR), "H5Screate"), H5Sclose};
  return {check(H5Screate_simple(static_cast<int>(shape.size()), shape.data(), maxshape ? maxshape->data() : nullptr),
                "H5Screate_simple"),
          H5Sclose};
}

}  // namespace

Id& Id::operator=(Id&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    close_ = o.close_;
    o.id_ = H5I_INVALID_HID;
  }
  return *this;
}

void Id::reset() {
  if (id_ >= 0 && close_) close_(id_);
  id_ = H5I_INVALID_HID;
}

hid_t check(hid_t id, const std::string& what) {
  if (id < 0) throw IoError(what + ": " + hdf5_message());
  return id;
}

Id utf8_string_type() {
  silence_hdf5();
  Id t(check(H5Tcopy(H5T_C_S1), "H5Tcopy"), H5Tclose);
  check(H5Tset_size(t.get(), H5T_VARIABLE), "H5Tset_size");
  check(H5Tset_cset(t.get(), H5T_CSET_UTF8), "H5Tset_cset");
  return t;
}

// ---- Object ------------------------------------------------------------------

std::string Object::path() const {
  ssize_t n = H5Iget_name(id(), nullptr, 0);
  if (n <= 0) return "?";
  std::string s(static_cast<size_t>(n), '\0');
  H5Iget_name(id(), s.data(), s.size() + 1);
  return s;
}

std::string Object::file_name() const {
  ssize_t n = H5Fget_name(id(), nullptr, 0);
  if (n <= 0) return "?";
  std::string s(static_cast<size_t>(n), '\0');
  H5Fget_name(id(), s.data(), s.size() + 1);
  return s;
}

std::string Object::where(const std::string& name) const {
  std::string p = path();
  if (p != "/") p += "/";
  return file_name() + ":" + p + name;
}

void Object::set_attr(const std::string& name, const std::string& value) {
  silence_hdf5();
  if (has_attr(name)) check(H5Adelete(id(), name.c_str()), "deleting attribute " + where(name));
  Id type = utf8_string_type();
  Id space = dataspace({});
  Id a(check(H5Acreate2(id(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
             "creating attribute " + where(name)),
       H5Aclose);
  const char* p = value.c_str();
  check(H5Awrite(a.get(), type.get(), &p), "writing attribute " + where(name));
}

namespace {
template <class T>
void set_numeric_attr(Object& o, hid_t id, const std::string& name, T value, const std::string& where) {
  if (o.has_attr(name)) check(H5Adelete(id, name.c_str()), "deleting attribute " + where);
  Id space = dataspace({});
  Id a(check(H5Acreate2(id, name.c_str(), native_type<T>(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
             "creating attribute " + where),
       H5Aclose);
  check(H5Awrite(a.get(), native_type<T>(), &value), "writing attribute " + where);
}
}  // namespace

void Object::set_attr(const std::string& name, int64_t value) {
  silence_hdf5();
  set_numeric_attr(*this, id(), name, value, where(name));
}
void Object::set_attr(const std::string& name, double value) {
  silence_hdf5();
  set_numeric_attr(*this, id(), name, value, where(name));
}

bool Object::has_attr(const std::string& name) const {
  silence_hdf5();
  return check(H5Aexists(id(), name.c_str()), "checking attribute " + where(name)) > 0;
}

namespace {
// Attributes are read into one value: a file may hold an array under the
// same name (fuzzing found one overflowing the stack), so count first.
Id open_one_value(const Object& o, const std::string& name, const char* what) {
  Id a(check(H5Aopen(o.id(), name.c_str(), H5P_DEFAULT), "opening attribute " + o.where(name)), H5Aclose);
  Id space(check(H5Aget_space(a.get()), "H5Aget_space"), H5Sclose);
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n != 1)
    throw IoError("attribute " + o.where(name) + " holds " + std::to_string(n) + " values, expected one " + what);
  return a;
}
}  // namespace

std::string Object::attr_string(const std::string& name) const {
  silence_hdf5();
  Id a = open_one_value(*this, name, "string");
  Id ftype(check(H5Aget_type(a.get()), "H5Aget_type"), H5Tclose);
  if (H5Tget_class(ftype.get()) != H5T_STRING) throw IoError("attribute " + where(name) + " is not a string");
  if (H5Tis_variable_str(ftype.get()) > 0) {
    Id mtype = utf8_string_type();
    char* p = nullptr;
    check(H5Aread(a.get(), mtype.get(), &p), "reading attribute " + where(name));
    std::string s = p ? p : "";
    H5free_memory(p);
    return s;
  }
  size_t n = H5Tget_size(ftype.get());
  std::string s(n, '\0');
  Id mtype(check(H5Tcopy(ftype.get()), "H5Tcopy"), H5Tclose);
  check(H5Aread(a.get(), mtype.get(), s.data()), "reading attribute " + where(name));
  s.resize(std::strlen(s.c_str()));
  return s;
}

int64_t Object::attr_int(const std::string& name) const {
  silence_hdf5();
  Id a = open_one_value(*this, name, "integer");
  int64_t v = 0;
  check(H5Aread(a.get(), H5T_NATIVE_INT64, &v), "reading attribute " + where(name) + " as integer");
  return v;
}

double Object::attr_double(const std::string& name) const {
  silence_hdf5();
  Id a = open_one_value(*this, name, "number");
  double v = 0;
  check(H5Aread(a.get(), H5T_NATIVE_DOUBLE, &v), "reading attribute " + where(name) + " as number");
  return v;
}

// ---- Dataset -----------------------------------------------------------------

std::vector<hsize_t> Dataset::shape() const {
  Id space(check(H5Dget_space(id()), "H5Dget_space " + path()), H5Sclose);
  int rank = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(rank, 0)));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return dims;
}

hsize_t Dataset::size() const {
  hsize_t n = 1;
  for (auto d : shape()) n *= d;
  return n;
}

std::string Dataset::type_name() const {
  Id t(check(H5Dget_type(id()), "H5Dget_type " + path()), H5Tclose);
  const size_t bytes = H5Tget_size(t.get());
  switch (H5Tget_class(t.get())) {
    case H5T_INTEGER: return (H5Tget_sign(t.get()) == H5T_SGN_NONE ? "uint" : "int") + std::to_string(8 * bytes);
    case H5T_FLOAT: return "float" + std::to_string(8 * bytes);
    case H5T_STRING: return "string";
    default: return "other";
  }
}

void Dataset::check_fits_in_memory(size_t element_bytes) const {
  // A file may declare any size (chunked storage allocates nothing until
  // written): refuse before allocating rather than die of bad_alloc.
  static const double memory = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGE_SIZE));
  const double bytes = static_cast<double>(size()) * static_cast<double>(element_bytes);
  std::string dims;
  for (auto d : shape()) dims += (dims.empty() ? "" : " x ") + std::to_string(d);
  if (bytes > memory) {
    char gb[64];
    std::snprintf(gb, sizeof gb, "%.1f GB, more than this machine's %.1f GB of memory", bytes / 1e9, memory / 1e9);
    throw DataError("dataset " + file_name() + ":" + path() + " declares " + dims + " elements = " + gb);
  }
  // Memory follows the stored bytes, not the claim: deflate, the only filter
  // zoobench writes, compresses at most about 1032:1, so a large dataset
  // storing less than that share of its size was never written whole
  // (unallocated chunks read as fill values).
  const double stored = static_cast<double>(H5Dget_storage_size(id()));
  if (bytes > 64e6 && stored * 1100 < bytes)
    throw DataError("dataset " + file_name() + ":" + path() + " declares " + dims + " elements but stores only " +
                    std::to_string(static_cast<long long>(stored)) + " bytes: it was never written whole");
}

template <class T>
void Dataset::read_into(T* out, hsize_t expected) const {
  silence_hdf5();
  Id ftype(check(H5Dget_type(id()), "H5Dget_type"), H5Tclose);
  auto cls = H5Tget_class(ftype.get());
  if (cls != H5T_INTEGER && cls != H5T_FLOAT) throw IoError("dataset " + file_name() + ":" + path() + " is not numeric");
  if (size() != expected)
    throw IoError("dataset " + file_name() + ":" + path() + " has " + std::to_string(size()) + " elements, expected " +
                  std::to_string(expected));
  if (expected == 0) return;
  check(H5Dread(id(), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out),
        "reading " + file_name() + ":" + path());
}

template <class T>
std::vector<T> Dataset::read() const {
  check_fits_in_memory(sizeof(T));
  std::vector<T> v(size());
  read_into(v.data(), v.size());
  return v;
}

std::vector<std::string> Dataset::read_strings() const {
  silence_hdf5();
  Id ftype(check(H5Dget_type(id()), "H5Dget_type"), H5Tclose);
  if (H5Tget_class(ftype.get()) != H5T_STRING || H5Tis_variable_str(ftype.get()) <= 0)
    throw IoError("dataset " + file_name() + ":" + path() + " is not a variable-length string column");
  check_fits_in_memory(sizeof(char*) + 16);
  hsize_t n = size();
  std::vector<char*> ptrs(n, nullptr);
  std::vector<std::string> out;
  if (n == 0) return out;
  Id mtype = utf8_string_type();
  check(H5Dread(id(), mtype.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), "reading " + path());
  out.reserve(n);
  for (char* p : ptrs) out.emplace_back(p ? p : "");
  Id space(check(H5Dget_space(id()), "H5Dget_space"), H5Sclose);
  H5Dvlen_reclaim(mtype.get(), space.get(), H5P_DEFAULT, ptrs.data());
  return out;
}

#define ZB_INSTANTIATE(T)                                                  \
  template std::vector<T> Dataset::read<T>() const;                        \
  template void Dataset::read_into<T>(T*, hsize_t) const;                  \
  template Dataset Group::write<T>(const std::string&, const T*, const std::vector<hsize_t>&, int);
ZB_INSTANTIATE(uint8_t)
ZB_INSTANTIATE(int32_t)
ZB_INSTANTIATE(int64_t)
ZB_INSTANTIATE(uint64_t)
ZB_INSTANTIATE(float)
ZB_INSTANTIATE(double)
#undef ZB_INSTANTIATE

// ---- Group -------------------------------------------------------------------

Group Group::create_group(const std::string& name) {
  silence_hdf5();
  return Group(Id(check(H5Gcreate2(id(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                        "creating group " + where(name)),
                  H5Gclose));
}

Group Group::open_group(const std::string& name) const {
  silence_hdf5();
  return Group(Id(check(H5Gopen2(id(), name.c_str(), H5P_DEFAULT), "opening group " + where(name)), H5Gclose));
}

bool Group::has(const std::string& name) const {
  silence_hdf5();
  // H5Lexists fails on a path whose intermediate link is missing; walk it.
  std::string prefix;
  size_t pos = 0;
  while (true) {
    size_t next = name.find('/', pos);
    prefix = name.substr(0, next);
    if (!prefix.empty() && H5Lexists(id(), prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (next == std::string::npos) return true;
    pos = next + 1;
  }
}

std::vector<std::string> Group::list() const {
  silence_hdf5();
  std::vector<std::string> names;
  auto cb = [](hid_t, const char* n, const H5L_info_t*, void* data) -> herr_t {
    static_cast<std::vector<std::string>*>(data)->emplace_back(n);
    return 0;
  };
  hsize_t idx = 0;
  check(H5Literate(id(), H5_INDEX_NAME, H5_ITER_INC, &idx, cb, &names), "listing " + path());
  return names;
}

Dataset Group::dataset(const std::string& name) const {
  silence_hdf5();
  if (!has(name)) throw IoError("no dataset " + where(name));
  return Dataset(Id(check(H5Dopen2(id(), name.c_str(), H5P_DEFAULT), "opening dataset " + where(name)), H5Dclose));
}

template <class T>
Dataset Group::write(const std::string& name, const T* data, const std::vector<hsize_t>& shape, int deflate) {
  silence_hdf5();
  Id space = dataspace(shape);
  Id dcpl(check(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate"), H5Pclose);
  hsize_t total = 1;
  for (auto d : shape) total *= d;
  if (deflate > 0 && total > 0 && !shape.empty()) {
    std::vector<hsize_t> chunk = shape;
    chunk[0] = std::max<hsize_t>(1, std::min<hsize_t>(shape[0], (1 << 20) / std::max<hsize_t>(1, total / shape[0])));
    check(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()), "H5Pset_chunk");
    check(H5Pset_deflate(dcpl.get(), static_cast<unsigned>(deflate)), "H5Pset_deflate");
  }
  Dataset d(Id(check(H5Dcreate2(id(), name.c_str(), native_type<T>(), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                     "creating dataset " + where(name)),
               H5Dclose));
  if (total > 0)
    check(H5Dwrite(d.id(), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "writing dataset " + where(name));
  return d;
}

Dataset Group::write_strings(const std::string& name, const std::vector<std::string>& values) {
  silence_hdf5();
  Id type = utf8_string_type();
  Id space = dataspace({static_cast<hsize_t>(values.size())});
  Dataset d(Id(check(H5Dcreate2(id(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                     "creating dataset " + where(name)),
               H5Dclose));
  std::vector<const char*> ptrs;
  ptrs.reserve(values.size());
  for (const auto& s : values) ptrs.push_back(s.c_str());
  if (!values.empty())
    check(H5Dwrite(d.id(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), "writing dataset " + where(name));
  return d;
}

// ---- File --------------------------------------------------------------------

File File::create(const std::filesystem::path& path) {
  silence_hdf5();
  hid_t id = check(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), "creating HDF5 file '" + path.string() + "'");
  return File(Id(id, H5Fclose), path);
}

File File::open(const std::filesystem::path& path, Mode mode) {
  silence_hdf5();
  if (!std::filesystem::exists(path)) throw IoError("cannot open HDF5 file '" + path.string() + "': no such file");
  hid_t id = -1;
  try {
    id = check(H5Fopen(path.c_str(), mode == Mode::ReadOnly ? H5F_ACC_RDONLY : H5F_ACC_RDWR, H5P_DEFAULT),
               "opening HDF5 file '" + path.string() + "'");
  } catch (const IoError& e) {
    // A readable file that is not HDF5 (no signature, or cut short) is bad
    // data, not an I/O failure; HDF5's own reason stays in the message.
    if (std::filesystem::is_regular_file(path) && ::access(path.c_str(), R_OK) == 0) throw DataError(e.what());
    throw;
  }
  return File(Id(id, H5Fclose), path);
}

void File::flush() { check(H5Fflush(id(), H5F_SCOPE_GLOBAL), "flushing '" + path_.string() + "'"); }

void File::close() {
  if (id_.get() < 0) return;
  // Detach first so a failing close is not retried by the destructor.
  hid_t id = id_.release();
  if (H5Fclose(id) < 0) check(-1, "closing '" + path_.string() + "'");
}

// ---- Table -------------------------------------------------------------------

namespace {
constexpr hsize_t kChunkRows = 4096;

Id column_type(Table::Type t) {
  switch (t) {
    case Table::Type::Int64: return Id(check(H5Tcopy(H5T_NATIVE_INT64), "H5Tcopy"), H5Tclose);
    case Table::Type::Float64: return Id(check(H5Tcopy(H5T_NATIVE_DOUBLE), "H5Tcopy"), H5Tclose);
    case Table::Type::String: return utf8_string_type();
  }
  throw IoError("bad column type");
}
}  // namespace

Table::Table(Group& parent, const std::string& name, std::vector<Column> columns)
    : group_(parent.has(name) ? parent.open_group(name) : parent.create_group(name)), columns_(std::move(columns)) {
  ints_.resize(columns_.size());
  doubles_.resize(columns_.size());
  strings_.resize(columns_.size());
  bool first = true;
  for (const auto& c : columns_) {
    if (group_.has(c.name)) {
      Dataset d = group_.dataset(c.name);
      hsize_t n = d.size();
      if (!first && n != stored_)
        throw IoError("table " + group_.where(c.name) + " has " + std::to_string(n) + " rows, other columns " +
                      std::to_string(stored_));
      stored_ = n;
      datasets_.push_back(std::move(d));
    } else {
      if (!first && stored_ != 0) throw IoError("table " + group_.where(c.name) + " is missing in a non-empty table");
      std::vector<hsize_t> zero{0}, unlimited{H5S_UNLIMITED};
      Id space = dataspace(zero, &unlimited);
      Id dcpl(check(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate"), H5Pclose);
      hsize_t chunk = kChunkRows;
      check(H5Pset_chunk(dcpl.get(), 1, &chunk), "H5Pset_chunk");
      Id type = column_type(c.type);
      Dataset d(Id(check(H5Dcreate2(group_.id(), c.name.c_str(), type.get(), space.get(), H5P_DEFAULT, dcpl.get(),
                                    H5P_DEFAULT),
                         "creating column " + group_.where(c.name)),
                   H5Dclose));
      if (!c.description.empty()) d.set_attr("description", c.description);
      datasets_.push_back(std::move(d));
    }
    first = false;
  }
}

Table::~Table() {
  try {
    flush();
  } catch (...) {
    // Destructors must not throw; callers that care call flush() themselves.
  }
}

void Table::append(std::vector<Cell> row) {
  if (row.size() != columns_.size())
    throw IoError("table " + group_.path() + ": row has " + std::to_string(row.size()) + " cells, table has " +
                  std::to_string(columns_.size()) + " columns");
  for (size_t i = 0; i < row.size(); ++i) {
    const auto& c = columns_[i];
    switch (c.type) {
      case Type::Int64:
        if (auto* v = std::get_if<int64_t>(&row[i])) { ints_[i].push_back(*v); continue; }
        break;
      case Type::Float64:
        if (auto* v = std::get_if<double>(&row[i])) { doubles_[i].push_back(*v); continue; }
        if (auto* v = std::get_if<int64_t>(&row[i])) { doubles_[i].push_back(static_cast<double>(*v)); continue; }
        break;
      case Type::String:
        if (auto* v = std::get_if<std::string>(&row[i])) { strings_[i].push_back(std::move(*v)); continue; }
        break;
    }
    // Roll back the cells of this row already buffered, so the table stays rectangular.
    for (size_t j = 0; j < i; ++j) {
      switch (columns_[j].type) {
        case Type::Int64: ints_[j].pop_back(); break;
        case Type::Float64: doubles_[j].pop_back(); break;
        case Type::String: strings_[j].pop_back(); break;
      }
    }
    throw IoError("table " + group_.path() + ": wrong type for column '" + c.name + "'");
  }
  ++pending_;
}

void Table::flush() {
  if (pending_ == 0) return;
  silence_hdf5();
  hsize_t new_size = stored_ + pending_;
  for (size_t i = 0; i < columns_.size(); ++i) {
    Dataset& d = datasets_[i];
    check(H5Dset_extent(d.id(), &new_size), "extending column " + d.path());
    Id fspace(check(H5Dget_space(d.id()), "H5Dget_space"), H5Sclose);
    hsize_t start = stored_, count = pending_;
    check(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, &start, nullptr, &count, nullptr), "H5Sselect_hyperslab");
    Id mspace = dataspace({count});
    Id type = column_type(columns_[i].type);
    const void* buf = nullptr;
    std::vector<const char*> ptrs;
    switch (columns_[i].type) {
      case Type::Int64: buf = ints_[i].data(); break;
      case Type::Float64: buf = doubles_[i].data(); break;
      case Type::String:
        for (const auto& s : strings_[i]) ptrs.push_back(s.c_str());
        buf = ptrs.data();
        break;
    }
    check(H5Dwrite(d.id(), type.get(), mspace.get(), fspace.get(), H5P_DEFAULT, buf), "appending to column " + d.path());
    ints_[i].clear();
    doubles_[i].clear();
    strings_[i].clear();
  }
  stored_ = new_size;
  pending_ = 0;
}

}  // namespace zoobench::h5
