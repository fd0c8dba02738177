// IDX files (the MNIST family's format): Fashion-MNIST and the --idx importer.
#include <zlib.h>

#include <algorithm>
#include <numeric>

#include "image_ops.h"
#include "sources.h"
#include "zoobench/error.h"

namespace zoobench {
namespace fs = std::filesystem;

IdxArrays read_idx(const fs::path& path) {
  // gzread reads plain files too, so one path serves .gz and raw IDX.
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw DataError("cannot open IDX file '" + path.string() + "'");
  struct Closer {
    gzFile f;
    ~Closer() { gzclose(f); }
  } closer{f};
  auto fail = [&](const std::string& m) -> DataError { return DataError("IDX file '" + path.string() + "': " + m); };
  unsigned char head[4];
  if (gzread(f, head, 4) != 4) throw fail("truncated header");
  if (head[0] != 0 || head[1] != 0) throw fail("bad magic number (not an IDX file)");
  if (head[2] != 0x08) throw fail("element type 0x" + std::to_string(head[2]) + " is not unsigned byte (0x08)");
  int ndims = head[3];
  if (ndims < 1 || ndims > 4) throw fail("bad dimension count " + std::to_string(ndims));
  IdxArrays out;
  uint64_t total = 1;
  for (int d = 0; d < ndims; ++d) {
    unsigned char b[4];
    if (gzread(f, b, 4) != 4) throw fail("truncated header");
    uint32_t v = (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | b[3];
    out.dims.push_back(v);
    total *= v;
  }
  if (total > (uint64_t(1) << 34)) throw fail("implausible size");
  // Memory follows the bytes actually read, not the header's promise: a
  // 20-byte file that claims 16 GB is "truncated", not an allocation.
  out.data.reserve(static_cast<size_t>(std::min<uint64_t>(total, uint64_t(1) << 26)));
  std::vector<uint8_t> buf(static_cast<size_t>(std::min<uint64_t>(total, 1u << 20)));
  uint64_t got = 0;
  while (got < total) {
    unsigned chunk = static_cast<unsigned>(std::min<uint64_t>(total - got, buf.size()));
    int n = gzread(f, buf.data(), chunk);
    if (n < 0) throw fail("read error (corrupt gzip stream?)");
    if (n == 0) break;
    out.data.insert(out.data.end(), buf.begin(), buf.begin() + n);
    got += static_cast<uint64_t>(n);
  }
  if (got != total) throw fail("truncated: header promises " + std::to_string(total) + " bytes of data, file has " + std::to_string(got));
  unsigned char extra;
  if (gzread(f, &extra, 1) == 1) throw fail("trailing bytes after the " + std::to_string(total) + " promised");
  return out;
}

namespace {

// Appends N x H x W images resized to kPackedSize with their labels.
void add_idx_pair(ImageSet& set, const fs::path& images, const fs::path& labels, Split split) {
  IdxArrays im = read_idx(images), lb = read_idx(labels);
  if (im.dims.size() != 3) throw DataError("IDX file '" + images.string() + "': expected 3 dimensions (N x H x W), got " + std::to_string(im.dims.size()));
  if (lb.dims.size() != 1) throw DataError("IDX file '" + labels.string() + "': expected 1 dimension (N), got " + std::to_string(lb.dims.size()));
  if (im.dims[0] != lb.dims[0])
    throw DataError("IDX files '" + images.string() + "' and '" + labels.string() + "' disagree: " +
                    std::to_string(im.dims[0]) + " images, " + std::to_string(lb.dims[0]) + " labels");
  int h = static_cast<int>(im.dims[1]), w = static_cast<int>(im.dims[2]);
  std::vector<uint8_t> out(set.image_bytes());
  for (int64_t i = 0; i < im.dims[0]; ++i) {
    img::resize(im.data.data() + static_cast<size_t>(i) * h * w, h, w, out.data(), set.height, set.width);
    set.add(out.data(), lb.data[i], split);
  }
}

}  // namespace

ImageSet import_idx(const std::string& name, const fs::path& train_images, const fs::path& train_labels,
                    const fs::path& test_images, const fs::path& test_labels, const PackOptions& opt) {
  ImageSet set;
  set.name = name;
  add_idx_pair(set, train_images, train_labels, Split::Train);
  bool has_test = !test_images.empty();
  if (has_test) add_idx_pair(set, test_images, test_labels, Split::Test);
  int64_t max_label = set.labels.empty() ? 0 : *std::max_element(set.labels.begin(), set.labels.end());
  for (int64_t c = 0; c <= max_label; ++c) set.class_names.push_back(std::to_string(c));
  if (!has_test) detail::split_stratified(set, opt.seed, opt.test_fraction);
  set.prov.package = "user";
  set.prov.source_path = train_images.string();
  set.prov.description = "IDX files imported with --idx";
  set.prov.split_rule = has_test ? "given test files" : "seeded stratified split";
  return set;
}

namespace detail {

Source fashion_mnist_source() {
  Source s;
  s.name = "fashion-mnist";
  s.domains = {"fashion-mnist"};
  s.description = "Zalando Fashion-MNIST, Debian dataset-fashion-mnist (gzipped IDX)";
  s.pack = [](const PackOptions& opt, const std::vector<std::string>&) {
    fs::path dir = "/usr/share/datasets/fashion-mnist";
    if (const char* env = std::getenv("ZOOBENCH_FASHION_MNIST_DIR"); env && *env) dir = env;
    if (!fs::exists(dir / "train-images-idx3-ubyte.gz"))
      throw DataError("Fashion-MNIST not found in '" + dir.string() + "' (apt-get install dataset-fashion-mnist)");
    ImageSet set = import_idx("fashion-mnist", dir / "train-images-idx3-ubyte.gz", dir / "train-labels-idx1-ubyte.gz",
                              dir / "t10k-images-idx3-ubyte.gz", dir / "t10k-labels-idx1-ubyte.gz", opt);
    set.class_names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                       "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
    set.prov.package = "dataset-fashion-mnist";
    set.prov.version = debian_version("dataset-fashion-mnist");
    set.prov.license = "MIT";
    set.prov.source_path = dir.string();
    set.prov.description = "Fashion-MNIST (Xiao et al. 2017), 28x28 resized to 32x32";
    set.prov.split_rule = "the official 60,000 / 10,000 split";
    return std::vector<ImageSet>{std::move(set)};
  };
  return s;
}

}  // namespace detail
}  // namespace zoobench
