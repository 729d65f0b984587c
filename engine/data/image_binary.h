// Readers for the binary releases of CIFAR-10 and STL-10. Both store an image channel by channel
// (CHW planes); the engine keeps images HWC (dataset.h), so every image is transposed at load time.
// Neither data set ships with uvtrain: the files are the user's to download and place.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/data/dataset.h"

namespace uv::data {

// CIFAR-10 binary version (cifar-10-binary.tar.gz): every file is a run of 3073-byte records,
// one label byte in [0, 10) and 3072 pixel bytes: the 32x32 red plane, then green, then blue, each
// row-major.
constexpr int kCifarSide = 32;
constexpr int64_t kCifarRecordBytes = 1 + 3 * kCifarSide * kCifarSide;  // 3073

// STL-10 binary version (stl10_binary.tar.gz): NAME_X.bin holds 3x96x96 uint8 images stored channel
// by channel (R, G, B) and, within a channel, COLUMN-major (the official reader reshapes to
// (-1, 3, 96, 96) and transposes (0, 3, 2, 1)); NAME_y.bin holds one byte per image, labels 1..10.
constexpr int kStlSide = 96;
constexpr int64_t kStlImageBytes = 3 * kStlSide * kStlSide;  // 27648

// How the pixels of one channel plane are ordered in a file.
enum class PlaneOrder { kRowMajor, kColumnMajor };

// Converts one rows x cols image stored as `channels` consecutive planes into HWC floats in [0, 1]:
// hwc[(r * cols + c) * channels + ch] = pixel (r, c) of plane ch / 255.
void planes_to_hwc(const uint8_t* planes, int rows, int cols, int channels, PlaneOrder order,
                   float* hwc);

// Loads CIFAR-10 record files in the given order into one data set (32x32x3, 10 classes).
// Throws uv::UserError naming the file for a missing file, a size that is not a positive multiple
// of 3073 bytes, or a label above 9 (with its record index in that file).
Dataset load_cifar10_files(const std::vector<std::string>& paths, const std::string& name);

// Loads an STL-10 image file and its label file (96x96x3, 10 classes, labels stored 0..9).
// Throws uv::UserError naming the file for a missing file, an image file whose size is not a
// positive multiple of 27648 bytes, a label count that differs from the image count, or a label
// outside 1..10 (with its index).
Dataset load_stl10_pair(const std::string& images_path, const std::string& labels_path,
                        const std::string& name);

}  // namespace uv::data
