package p9

import "fmt"

// MsgType is the type[1] byte of a 9P message. A reply's type is its
// request's type + 1.
type MsgType uint8

// Message types of 9P2000.L (Linux include/net/9p/9p.h, enum p9_msg_t).
const (
	MsgTlerror      MsgType = 6 // invalid as a request
	MsgRlerror      MsgType = 7
	MsgTstatfs      MsgType = 8
	MsgRstatfs      MsgType = 9
	MsgTlopen       MsgType = 12
	MsgRlopen       MsgType = 13
	MsgTlcreate     MsgType = 14
	MsgRlcreate     MsgType = 15
	MsgTsymlink     MsgType = 16
	MsgRsymlink     MsgType = 17
	MsgTmknod       MsgType = 18
	MsgRmknod       MsgType = 19
	MsgTrename      MsgType = 20
	MsgRrename      MsgType = 21
	MsgTreadlink    MsgType = 22
	MsgRreadlink    MsgType = 23
	MsgTgetattr     MsgType = 24
	MsgRgetattr     MsgType = 25
	MsgTsetattr     MsgType = 26
	MsgRsetattr     MsgType = 27
	MsgTxattrwalk   MsgType = 30
	MsgRxattrwalk   MsgType = 31
	MsgTxattrcreate MsgType = 32
	MsgRxattrcreate MsgType = 33
	MsgTreaddir     MsgType = 40
	MsgRreaddir     MsgType = 41
	MsgTfsync       MsgType = 50
	MsgRfsync       MsgType = 51
	MsgTlock        MsgType = 52
	MsgRlock        MsgType = 53
	MsgTgetlock     MsgType = 54
	MsgRgetlock     MsgType = 55
	MsgTlink        MsgType = 70
	MsgRlink        MsgType = 71
	MsgTmkdir       MsgType = 72
	MsgRmkdir       MsgType = 73
	MsgTrenameat    MsgType = 74
	MsgRrenameat    MsgType = 75
	MsgTunlinkat    MsgType = 76
	MsgRunlinkat    MsgType = 77
	MsgTversion     MsgType = 100
	MsgRversion     MsgType = 101
	MsgTauth        MsgType = 102
	MsgRauth        MsgType = 103
	MsgTattach      MsgType = 104
	MsgRattach      MsgType = 105
	MsgTflush       MsgType = 108
	MsgRflush       MsgType = 109
	MsgTwalk        MsgType = 110
	MsgRwalk        MsgType = 111
	MsgTread        MsgType = 116
	MsgRread        MsgType = 117
	MsgTwrite       MsgType = 118
	MsgRwrite       MsgType = 119
	MsgTclunk       MsgType = 120
	MsgRclunk       MsgType = 121
	MsgTremove      MsgType = 122
	MsgRremove      MsgType = 123
)

var msgNames = map[MsgType]string{
	MsgTlerror: "Tlerror", MsgRlerror: "Rlerror", MsgTstatfs: "Tstatfs", MsgRstatfs: "Rstatfs",
	MsgTlopen: "Tlopen", MsgRlopen: "Rlopen", MsgTlcreate: "Tlcreate", MsgRlcreate: "Rlcreate",
	MsgTsymlink: "Tsymlink", MsgRsymlink: "Rsymlink", MsgTmknod: "Tmknod", MsgRmknod: "Rmknod",
	MsgTrename: "Trename", MsgRrename: "Rrename", MsgTreadlink: "Treadlink", MsgRreadlink: "Rreadlink",
	MsgTgetattr: "Tgetattr", MsgRgetattr: "Rgetattr", MsgTsetattr: "Tsetattr", MsgRsetattr: "Rsetattr",
	MsgTxattrwalk: "Txattrwalk", MsgRxattrwalk: "Rxattrwalk", MsgTxattrcreate: "Txattrcreate",
	MsgRxattrcreate: "Rxattrcreate", MsgTreaddir: "Treaddir", MsgRreaddir: "Rreaddir",
	MsgTfsync: "Tfsync", MsgRfsync: "Rfsync", MsgTlock: "Tlock", MsgRlock: "Rlock",
	MsgTgetlock: "Tgetlock", MsgRgetlock: "Rgetlock", MsgTlink: "Tlink", MsgRlink: "Rlink",
	MsgTmkdir: "Tmkdir", MsgRmkdir: "Rmkdir", MsgTrenameat: "Trenameat", MsgRrenameat: "Rrenameat",
	MsgTunlinkat: "Tunlinkat", MsgRunlinkat: "Runlinkat", MsgTversion: "Tversion", MsgRversion: "Rversion",
	MsgTauth: "Tauth", MsgRauth: "Rauth", MsgTattach: "Tattach", MsgRattach: "Rattach",
	MsgTflush: "Tflush", MsgRflush: "Rflush", MsgTwalk: "Twalk", MsgRwalk: "Rwalk",
	MsgTread: "Tread", MsgRread: "Rread", MsgTwrite: "Twrite", MsgRwrite: "Rwrite",
	MsgTclunk: "Tclunk", MsgRclunk: "Rclunk", MsgTremove: "Tremove", MsgRremove: "Rremove",
}

func (t MsgType) String() string {
	if s, ok := msgNames[t]; ok {
		return s
	}
	return fmt.Sprintf("MsgType(%d)", uint8(t))
}

// Protocol constants.
const (
	// HeaderSize is size[4] type[1] tag[2].
	HeaderSize = 7
	// NoTag is the tag of Tversion.
	NoTag uint16 = 0xFFFF
	// NoFid means "no fid" (Tattach's afid without authentication).
	NoFid uint32 = 0xFFFFFFFF
	// NoUid is n_uname "none".
	NoUid uint32 = 0xFFFFFFFF
	// MaxWalkElem is the most names one Twalk may carry (MAXWELEM).
	MaxWalkElem = 16
	// IOHeaderSize is room a client reserves for a Twrite/Rread header
	// (P9_IOHDRSZ): the data of one Tread or Twrite is at most msize - 24.
	IOHeaderSize = 24
	// ReadHeaderSize is size[4] type[1] tag[2] count[4], the header of Rread
	// and Rreaddir that precedes their data.
	ReadHeaderSize = 11
	// WriteHeaderSize is the header of Twrite before its data.
	WriteHeaderSize = 23
	// QIDSize is the wire size of a QID.
	QIDSize = 13
	// Version is the protocol this package speaks.
	Version = "9P2000.L"
	// VersionUnknown is Rversion's answer to a version we do not speak.
	VersionUnknown = "unknown"
)

// QID type bits (qid.type).
const (
	QTDir     uint8 = 0x80
	QTAppend  uint8 = 0x40
	QTExcl    uint8 = 0x20
	QTMount   uint8 = 0x10
	QTAuth    uint8 = 0x08
	QTTmp     uint8 = 0x04
	QTSymlink uint8 = 0x02
	QTLink    uint8 = 0x01
	QTFile    uint8 = 0x00
)

// QID is the server's identity of a file: type[1] version[4] path[8].
// Path is unique per file (the client's inode number).
type QID struct {
	Type    uint8
	Version uint32
	Path    uint64
}

// Tgetattr request_mask / Rgetattr valid bits (P9_STATS_*).
const (
	AttrMode        uint64 = 0x0001
	AttrNlink       uint64 = 0x0002
	AttrUID         uint64 = 0x0004
	AttrGID         uint64 = 0x0008
	AttrRdev        uint64 = 0x0010
	AttrAtime       uint64 = 0x0020
	AttrMtime       uint64 = 0x0040
	AttrCtime       uint64 = 0x0080
	AttrIno         uint64 = 0x0100
	AttrSize        uint64 = 0x0200
	AttrBlocks      uint64 = 0x0400
	AttrBtime       uint64 = 0x0800
	AttrGen         uint64 = 0x1000
	AttrDataVersion uint64 = 0x2000
	AttrBasic       uint64 = 0x07ff
	AttrAll         uint64 = 0x3fff
)

// Tsetattr valid bits (P9_ATTR_*).
const (
	SetAttrMode     uint32 = 0x001
	SetAttrUID      uint32 = 0x002
	SetAttrGID      uint32 = 0x004
	SetAttrSize     uint32 = 0x008
	SetAttrAtime    uint32 = 0x010
	SetAttrMtime    uint32 = 0x020
	SetAttrCtime    uint32 = 0x040
	SetAttrAtimeSet uint32 = 0x080
	SetAttrMtimeSet uint32 = 0x100
)

// Tlopen / Tlcreate flags (P9_DOTL_*): the x86 / asm-generic O_* values,
// which the server translates bit by bit to the host's.
const (
	DotlRdonly    uint32 = 0
	DotlWronly    uint32 = 01
	DotlRdwr      uint32 = 02
	DotlNoaccess  uint32 = 03
	DotlCreate    uint32 = 0100
	DotlExcl      uint32 = 0200
	DotlNoctty    uint32 = 0400
	DotlTrunc     uint32 = 01000
	DotlAppend    uint32 = 02000
	DotlNonblock  uint32 = 04000
	DotlDsync     uint32 = 010000
	DotlFasync    uint32 = 020000
	DotlDirect    uint32 = 040000
	DotlLargefile uint32 = 0100000
	DotlDirectory uint32 = 0200000
	DotlNofollow  uint32 = 0400000
	DotlNoatime   uint32 = 01000000
	DotlCloexec   uint32 = 02000000
	DotlSync      uint32 = 04000000
)

// Lock types, flags and statuses of Tlock / Tgetlock.
const (
	LockTypeRdlck uint8 = 0
	LockTypeWrlck uint8 = 1
	LockTypeUnlck uint8 = 2

	LockFlagBlock   uint32 = 1
	LockFlagReclaim uint32 = 2

	LockSuccess uint8 = 0
	LockBlocked uint8 = 1
	LockError   uint8 = 2
	LockGrace   uint8 = 3
)

// Other constants of 9P2000.L messages.
const (
	// AtRemoveDir is Tunlinkat's flag for rmdir (AT_REMOVEDIR).
	AtRemoveDir uint32 = 0x200
	// XattrCreate and XattrReplace are Txattrcreate's setxattr(2) flags.
	XattrCreate  uint32 = 1
	XattrReplace uint32 = 2
	// XattrSizeMax bounds an xattr value or list (XATTR_SIZE_MAX).
	XattrSizeMax = 65536
	// V9fsMagic is the f_type Rstatfs reports (V9FS_MAGIC).
	V9fsMagic uint32 = 0x01021997
)
