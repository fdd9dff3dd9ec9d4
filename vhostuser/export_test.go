package vhostuser_test

import "encoding/binary"

var le = binary.LittleEndian
