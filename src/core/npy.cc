#include "core/npy.h"

#include <fmt/ranges.h>

#include <array>
#include <cstring>
#include <regex>
#include <utility>

#include "core/file_util.h"

namespace braid {
namespace {

constexpr std::string_view kMagic = "\x93NUMPY";

constexpr std::array<std::pair<std::string_view, DataType>, 6> kDescriptors = {{
    {"f4", DataType::kFp32},
    {"f2", DataType::kFp16},
    {"i8", DataType::kInt64},
    {"i4", DataType::kInt32},
    {"u1", DataType::kUint8},
    {"b1", DataType::kBool},
}};

Result<DataType> ParseDescriptor(std::string_view descr) {
  if (descr.size() != 3 || (descr[0] != '<' && descr[0] != '|' && descr[0] != '=')) {
    return InvalidArgument("unsupported dtype '{}' (little-endian f4, f2, i8, i4, u1, b1 only)",
                           descr);
  }
  for (const auto& [code, type] : kDescriptors) {
    if (descr.substr(1) == code) return type;
  }
  return InvalidArgument("unsupported dtype '{}' (f4, f2, i8, i4, u1, b1 only)", descr);
}

std::string_view DescriptorOf(DataType type) {
  switch (type) {
    case DataType::kFp32:
      return "<f4";
    case DataType::kFp16:
      return "<f2";
    case DataType::kInt64:
      return "<i8";
    case DataType::kInt32:
      return "<i4";
    case DataType::kUint8:
      return "|u1";
    case DataType::kBool:
      return "|b1";
    case DataType::kBytes:
      break;
  }
  return "";
}

}  // namespace

Result<Tensor> ParseNpy(std::string_view bytes) {
  if (bytes.size() < 10 || bytes.substr(0, kMagic.size()) != kMagic) {
    return InvalidArgument("not an .npy file (bad magic)");
  }
  auto major = static_cast<unsigned char>(bytes[6]);
  std::size_t header_length = 0;
  std::size_t header_start = 0;
  if (major == 1) {
    header_length =
        static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return InvalidArgument("truncated .npy header");
    std::uint32_t length;
    std::memcpy(&length, bytes.data() + 8, sizeof(length));
    header_length = length;
    header_start = 12;
  } else {
    return InvalidArgument("unsupported .npy format version {}", major);
  }
  if (header_length > bytes.size() - header_start) return InvalidArgument("truncated .npy header");
  std::string header(bytes.substr(header_start, header_length));

  static const std::regex kDescr(R"('descr'\s*:\s*'([^']*)')");
  static const std::regex kFortran(R"('fortran_order'\s*:\s*(True|False))");
  static const std::regex kShape(R"('shape'\s*:\s*\(([^)]*)\))");
  std::smatch descr, fortran, shape_match;
  if (!std::regex_search(header, descr, kDescr) || !std::regex_search(header, fortran, kFortran) ||
      !std::regex_search(header, shape_match, kShape)) {
    return InvalidArgument("malformed .npy header '{}'", header);
  }
  if (fortran[1] == "True") return InvalidArgument("Fortran-order .npy arrays are not supported");
  BRAID_ASSIGN_OR_RETURN(DataType type, ParseDescriptor(descr[1].str()));

  Shape shape;
  static const std::regex kDim(R"(\s*(\d+)\s*,?)");
  std::string dims = shape_match[1];
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), kDim); it != std::sregex_iterator();
       ++it) {
    const std::string digits = (*it)[1];
    if (digits.size() > 18) return InvalidArgument(".npy dimension {} is too large", digits);
    shape.push_back(std::stoll(digits));
  }
  BRAID_ASSIGN_OR_RETURN(std::int64_t count, ElementCount(shape));
  std::size_t data_start = header_start + header_length;
  BRAID_ASSIGN_OR_RETURN(std::size_t size, ByteSizeOf(type, count, bytes.size() - data_start));
  if (size != bytes.size() - data_start) {
    return InvalidArgument(".npy data is {} bytes but shape {} of {} needs {}",
                           bytes.size() - data_start, ShapeToString(shape), DataTypeName(type),
                           size);
  }
  BRAID_ASSIGN_OR_RETURN(Tensor tensor, Tensor::Allocate(type, shape));
  std::memcpy(tensor.mutable_data(), bytes.data() + data_start, size);
  return tensor;
}

Result<Tensor> ReadNpy(const std::filesystem::path& path) {
  BRAID_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
  auto tensor = ParseNpy(bytes);
  if (!tensor.ok()) return tensor.status().WithContext(path.string());
  return tensor;
}

Result<std::string> SerializeNpy(const Tensor& tensor) {
  std::string_view descr = DescriptorOf(tensor.dtype());
  if (descr.empty())
    return InvalidArgument("{} tensors cannot be written as .npy", DataTypeName(tensor.dtype()));
  std::string shape = fmt::format("{}", fmt::join(tensor.shape(), ", "));
  if (tensor.shape().size() == 1) shape += ",";  // a Python 1-tuple
  std::string header =
      fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}", descr, shape);
  // Pad with spaces so the data starts on a 64-byte boundary, then a newline.
  std::size_t total = kMagic.size() + 4 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string out(kMagic);
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  out += header;
  out.append(reinterpret_cast<const char*>(tensor.data()), tensor.byte_size());
  return out;
}

Status WriteNpy(const std::filesystem::path& path, const Tensor& tensor) {
  BRAID_ASSIGN_OR_RETURN(std::string bytes, SerializeNpy(tensor));
  return WriteFile(path, bytes);
}

}  // namespace braid
