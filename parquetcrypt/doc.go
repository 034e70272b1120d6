// Package parquetcrypt reads and writes Parquet files encrypted with Parquet
// Modular Encryption, interoperating with Parquet C++, parquet-java (Spark)
// and arrow-go.
//
// Reading decrypts page by page and re-emits a plaintext Parquet stream
// (File.DecryptTo) or Arrow record batches (File.NewRecordReader), with
// keys from a KeyRetriever. Writing is arrow-go's encryption configured by
// EncryptConfig. See docs/parquet-encryption.md for the interop matrix.
package parquetcrypt
