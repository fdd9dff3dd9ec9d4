//go:build !race

package fusemount

const raceBuild = false
