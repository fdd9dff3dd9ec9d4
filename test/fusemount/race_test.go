//go:build race

package fusemount

// raceBuild: under go test -race, fastfsd is built with -race too, and a
// race report in its output fails the test.
const raceBuild = true
