// Package bench holds benchmarks that compare latch with the libraries users
// would pick instead, and interoperability tests against independent JOSE
// libraries. It is a separate module so that the latch library never depends
// on its peers. See BENCHMARKS.md at the repository root for results and the
// exact commands.
package bench
