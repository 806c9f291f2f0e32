// Internal: Ed25519 keys and signatures (OpenSSL 3), for model package signing.
#pragma once

#include <string>
#include <string_view>

namespace medinfer::detail {

struct Ed25519KeyPair {
  std::string private_pem;  ///< PKCS#8 PEM
  std::string public_pem;   ///< SubjectPublicKeyInfo PEM
};

Ed25519KeyPair ed25519_generate();
/// Signs `message` with a PEM private key; returns the 64-byte signature. Throws kInvalidArgument
/// for a key that is not an Ed25519 private key (`what` names it).
std::string ed25519_sign(const std::string& private_pem, std::string_view message, const std::string& what);
/// True when `signature` is `message` signed by the PEM public key. Throws kInvalidArgument for a
/// key that is not an Ed25519 public key.
bool ed25519_verify(const std::string& public_pem, std::string_view message, std::string_view signature,
                    const std::string& what);
/// The key's id: SHA-256 (hex) of its raw 32-byte public key. Accepts a public or private PEM.
std::string ed25519_key_id(const std::string& pem, const std::string& what);
/// The same for a key that must be private (a signing key): a malformed one is reported as "not an
/// Ed25519 private key", whatever its PEM header says.
std::string ed25519_private_key_id(const std::string& private_pem, const std::string& what);
/// The same for a key that must be public (a key a host pins): a private key is refused as such
/// ("a private key: pin its public key, never the signing key"), anything else as "not an Ed25519
/// public key in PEM form".
std::string ed25519_public_key_id(const std::string& public_pem, const std::string& what);

std::string base64_encode(std::string_view bytes);
/// Throws kInvalidArgument naming `what` for malformed input.
std::string base64_decode(std::string_view text, const std::string& what);

}  // namespace medinfer::detail
