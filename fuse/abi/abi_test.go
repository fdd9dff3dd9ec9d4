package abi

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// kernelSizes is sizeof() of each struct in the 7.45 header (x86_64; the
// layout is the same on every architecture because the header pads
// explicitly), as listed in /work/shared/ref/fuse.md §2–§11 and checked
// against include/uapi/linux/fuse.h.
var kernelSizes = map[string]uintptr{
	"InHeader": 40, "OutHeader": 16, "Attr": 88, "SxTime": 16, "Statx": 256,
	"Kstatfs": 80, "StatfsOut": 80, "FileLock": 24, "EntryOut": 128,
	"ForgetIn": 8, "ForgetOne": 16, "BatchForgetIn": 8, "GetattrIn": 16,
	"AttrOut": 104, "StatxIn": 24, "StatxOut": 288, "MknodIn": 16,
	"MkdirIn": 8, "RenameIn": 8, "Rename2In": 16, "LinkIn": 8,
	"SetattrIn": 88, "OpenIn": 8, "CreateIn": 16, "OpenOut": 16,
	"ReleaseIn": 24, "FlushIn": 24, "ReadIn": 40, "WriteIn": 40,
	"WriteOut": 8, "FsyncIn": 16, "SetxattrIn": 16, "GetxattrIn": 8,
	"GetxattrOut": 8, "LkIn": 48, "LkOut": 24, "AccessIn": 8, "InitIn": 64,
	"InitOut": 64, "CuseInitIn": 16, "CuseInitOut": 72, "InterruptIn": 8,
	"BmapIn": 16, "BmapOut": 8, "IoctlIn": 32, "IoctlIovec": 16,
	"IoctlOut": 16, "PollIn": 24, "PollOut": 8, "NotifyPollWakeupOut": 8,
	"FallocateIn": 32, "Dirent": 24, "Direntplus": 152,
	"NotifyInvalInodeOut": 24, "NotifyInvalEntryOut": 16,
	"NotifyDeleteOut": 24, "NotifyStoreOut": 24, "NotifyRetrieveOut": 32,
	"NotifyRetrieveIn": 40, "NotifyPruneOut": 16, "BackingMap": 16,
	"LseekIn": 24, "LseekOut": 8, "CopyFileRangeIn": 56,
	"CopyFileRangeOut": 8, "SetupmappingIn": 40, "RemovemappingIn": 4,
	"RemovemappingOne": 16, "SyncfsIn": 8, "Secctx": 8, "SecctxHeader": 8,
	"ExtHeader": 8, "SuppGroups": 4, "UringEntInOut": 32,
	"UringReqHeader": 288, "UringCmdReq": 24,
}

// sizeConsts are the exported *Size constants, which callers use instead of
// sizeof.
var sizeConsts = map[string]int{
	"InHeader": InHeaderSize, "OutHeader": OutHeaderSize, "Attr": AttrSize,
	"SxTime": SxTimeSize, "Statx": StatxSize, "Kstatfs": KstatfsSize,
	"StatfsOut": StatfsOutSize, "FileLock": FileLockSize,
	"EntryOut": EntryOutSize, "ForgetIn": ForgetInSize,
	"ForgetOne": ForgetOneSize, "BatchForgetIn": BatchForgetInSize,
	"GetattrIn": GetattrInSize, "AttrOut": AttrOutSize,
	"StatxIn": StatxInSize, "StatxOut": StatxOutSize, "MknodIn": MknodInSize,
	"MkdirIn": MkdirInSize, "RenameIn": RenameInSize,
	"Rename2In": Rename2InSize, "LinkIn": LinkInSize,
	"SetattrIn": SetattrInSize, "OpenIn": OpenInSize,
	"CreateIn": CreateInSize, "OpenOut": OpenOutSize,
	"ReleaseIn": ReleaseInSize, "FlushIn": FlushInSize, "ReadIn": ReadInSize,
	"WriteIn": WriteInSize, "WriteOut": WriteOutSize, "FsyncIn": FsyncInSize,
	"SetxattrIn": SetxattrInSize, "GetxattrIn": GetxattrInSize,
	"GetxattrOut": GetxattrOutSize, "LkIn": LkInSize, "LkOut": LkOutSize,
	"AccessIn": AccessInSize, "InitIn": InitInSize, "InitOut": InitOutSize,
	"CuseInitIn": CuseInitInSize, "CuseInitOut": CuseInitOutSize,
	"InterruptIn": InterruptInSize, "BmapIn": BmapInSize,
	"BmapOut": BmapOutSize, "IoctlIn": IoctlInSize,
	"IoctlIovec": IoctlIovecSize, "IoctlOut": IoctlOutSize,
	"PollIn": PollInSize, "PollOut": PollOutSize,
	"NotifyPollWakeupOut": NotifyPollWakeupSize,
	"FallocateIn":         FallocateInSize, "Dirent": DirentHeaderSize,
	"Direntplus":          DirentplusHeaderSize,
	"NotifyInvalInodeOut": NotifyInvalInodeSize,
	"NotifyInvalEntryOut": NotifyInvalEntrySize,
	"NotifyDeleteOut":     NotifyDeleteSize, "NotifyStoreOut": NotifyStoreSize,
	"NotifyRetrieveOut": NotifyRetrieveSize,
	"NotifyRetrieveIn":  NotifyRetrieveInSize,
	"NotifyPruneOut":    NotifyPruneSize, "BackingMap": BackingMapSize,
	"LseekIn": LseekInSize, "LseekOut": LseekOutSize,
	"CopyFileRangeIn":  CopyFileRangeInSize,
	"CopyFileRangeOut": CopyFileRangeOutSize,
	"SetupmappingIn":   SetupmappingInSize,
	"RemovemappingIn":  RemovemappingInSize,
	"RemovemappingOne": RemovemappingOneSize, "SyncfsIn": SyncfsInSize,
	"Secctx": SecctxSize, "SecctxHeader": SecctxHeaderSize,
	"ExtHeader": ExtHeaderSize, "SuppGroups": SuppGroupsSize,
	"UringEntInOut": UringEntInOutSize, "UringReqHeader": UringReqHeaderSize,
	"UringCmdReq": UringCmdReqSize,
}

func TestSizes(t *testing.T) {
	if len(codecTypes) != len(kernelSizes) {
		t.Errorf("%d types have codecs, %d kernel sizes are pinned", len(codecTypes), len(kernelSizes))
	}
	for _, ct := range codecTypes {
		t.Run(ct.Name, func(t *testing.T) {
			want, ok := kernelSizes[ct.Name]
			if !ok {
				t.Fatalf("no kernel size pinned for %s", ct.Name)
			}
			got := reflect.TypeOf(ct.New()).Elem().Size()
			if got != want {
				t.Errorf("Go size %d, kernel size %d", got, want)
			}
			if ct.Size != int(want) {
				t.Errorf("codec size %d, kernel size %d", ct.Size, want)
			}
			if c, ok := sizeConsts[ct.Name]; !ok || c != int(want) {
				t.Errorf("size constant = %d (present %v), kernel size %d", c, ok, want)
			}
		})
	}
}

func TestCompatSizes(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"FUSE_COMPAT_ENTRY_OUT_SIZE", CompatEntryOutSize, 120},
		{"FUSE_COMPAT_ATTR_OUT_SIZE", CompatAttrOutSize, 96},
		{"FUSE_COMPAT_MKNOD_IN_SIZE", CompatMknodInSize, 8},
		{"FUSE_COMPAT_WRITE_IN_SIZE", CompatWriteInSize, 24},
		{"FUSE_COMPAT_STATFS_SIZE", CompatStatfsSize, 48},
		{"FUSE_COMPAT_SETXATTR_IN_SIZE", CompatSetxattrInSize, 8},
		{"fuse_init_in before 7.36", CompatInitInSize, 16},
		{"FUSE_COMPAT_INIT_OUT_SIZE", CompatInitOutSize, 8},
		{"FUSE_COMPAT_22_INIT_OUT_SIZE", Compat22InitOutSize, 24},
		{"REMOVEMAPPING array offset", RemovemappingArrayOffset, 44},
		{"FUSE_NAME_OFFSET", NameOffset, 24},
		{"FUSE_NAME_OFFSET_DIRENTPLUS", NameOffsetDirentplus, 152},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

// TestOffsets pins field offsets the header comments and ref/fuse.md give
// explicitly, where a wrong padding field would shift a later field without
// changing the size.
func TestOffsets(t *testing.T) {
	for _, c := range []struct {
		typ   reflect.Type
		field string
		want  uintptr
	}{
		{reflect.TypeFor[InHeader](), "TotalExtlen", 36},
		{reflect.TypeFor[EntryOut](), "Attr", 40},
		{reflect.TypeFor[AttrOut](), "Attr", 16},
		{reflect.TypeFor[InitIn](), "Flags2", 16},
		{reflect.TypeFor[InitOut](), "MaxBackground", 16},
		{reflect.TypeFor[InitOut](), "MaxWrite", 20},
		{reflect.TypeFor[InitOut](), "TimeGran", 24},
		{reflect.TypeFor[InitOut](), "MaxPages", 28},
		{reflect.TypeFor[InitOut](), "MapAlignment", 30},
		{reflect.TypeFor[InitOut](), "Flags2", 32},
		{reflect.TypeFor[InitOut](), "MaxStackDepth", 36},
		{reflect.TypeFor[InitOut](), "RequestTimeout", 40},
		{reflect.TypeFor[OpenOut](), "BackingID", 12},
		{reflect.TypeFor[LkIn](), "Lk", 16},
		{reflect.TypeFor[LkIn](), "LkFlags", 40},
		{reflect.TypeFor[SetattrIn](), "Mode", 68},
		{reflect.TypeFor[SetattrIn](), "UID", 76},
		{reflect.TypeFor[StatxOut](), "Stat", 32},
		{reflect.TypeFor[Statx](), "Ino", 32},
		{reflect.TypeFor[Statx](), "Atime", 64},
		{reflect.TypeFor[Statx](), "RdevMajor", 128},
		{reflect.TypeFor[Direntplus](), "Dirent", 128},
		{reflect.TypeFor[SetupmappingIn](), "Moffset", 32},
		{reflect.TypeFor[UringReqHeader](), "OpIn", 128},
		{reflect.TypeFor[UringReqHeader](), "RingEntInOut", 256},
		{reflect.TypeFor[UringCmdReq](), "QID", 16},
		{reflect.TypeFor[BackingMap](), "Flags", 4},
		{reflect.TypeFor[CopyFileRangeIn](), "Flags", 48},
	} {
		f, ok := c.typ.FieldByName(c.field)
		if !ok {
			t.Errorf("%s has no field %s", c.typ.Name(), c.field)
			continue
		}
		if f.Offset != c.want {
			t.Errorf("%s.%s at %d, want %d", c.typ.Name(), c.field, f.Offset, c.want)
		}
	}
}

// TestCodecRoundTrip decodes random bytes into every type, encodes the
// value back, and checks that the named fields survive and that only
// padding differs (it is written as zeros).
func TestCodecRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, ct := range codecTypes {
		t.Run(ct.Name, func(t *testing.T) {
			in := make([]byte, ct.Size+3)
			for i := range in {
				in[i] = byte(rng.Uint32())
			}
			v := ct.New()
			if v.Unmarshal(in[:ct.Size-1]) {
				t.Fatal("Unmarshal accepted a short buffer")
			}
			if !reflect.ValueOf(v).Elem().IsZero() {
				t.Fatal("failed Unmarshal changed the value")
			}
			if !v.Unmarshal(in) {
				t.Fatal("Unmarshal failed on a long enough buffer")
			}
			out := bytes.Repeat([]byte{0xAA}, ct.Size+3)
			if v.Marshal(out[:ct.Size-1]) {
				t.Fatal("Marshal accepted a short buffer")
			}
			if out[0] != 0xAA {
				t.Fatal("failed Marshal wrote")
			}
			if !v.Marshal(out) {
				t.Fatal("Marshal failed")
			}
			if !bytes.Equal(out[ct.Size:], []byte{0xAA, 0xAA, 0xAA}) {
				t.Fatal("Marshal wrote past the struct")
			}
			// Every byte is either copied (a field) or zero (padding).
			pad := padding(reflect.TypeOf(v).Elem(), 0, nil)
			for i := 0; i < ct.Size; i++ {
				if pad[i] {
					if out[i] != 0 {
						t.Errorf("padding byte %d = %#x, want 0", i, out[i])
					}
				} else if out[i] != in[i] {
					t.Errorf("byte %d = %#x, want %#x", i, out[i], in[i])
				}
			}
			w := ct.New()
			w.Unmarshal(out)
			if !reflect.DeepEqual(v, w) {
				t.Errorf("decode(encode(v)) = %+v, want %+v", w, v)
			}
		})
	}
}

// padding marks the bytes of blank fields of t.
func padding(t reflect.Type, base uintptr, m map[int]bool) map[int]bool {
	if m == nil {
		m = map[int]bool{}
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		switch {
		case f.Name == "_":
			for j := uintptr(0); j < f.Type.Size(); j++ {
				m[int(base+f.Offset+j)] = true
			}
		case f.Type.Kind() == reflect.Struct:
			padding(f.Type, base+f.Offset, m)
		}
	}
	return m
}

func TestDirentSizes(t *testing.T) {
	for _, c := range []struct{ n, plain, plus int }{
		{1, 32, 160}, {8, 32, 160}, {9, 40, 168}, {255, 280, 408},
	} {
		if got := DirentRecordSize(c.n); got != c.plain {
			t.Errorf("DirentRecordSize(%d) = %d, want %d", c.n, got, c.plain)
		}
		if got := DirentplusRecordSize(c.n); got != c.plus {
			t.Errorf("DirentplusRecordSize(%d) = %d, want %d", c.n, got, c.plus)
		}
	}
}

func TestOpcodeString(t *testing.T) {
	for _, c := range []struct {
		op   Opcode
		want string
	}{
		{OpLookup, "LOOKUP"}, {OpCopyFileRange64, "COPY_FILE_RANGE_64"},
		{OpBatchForget, "BATCH_FORGET"}, {OpCuseInit, "CUSE_INIT"},
		{7, "OPCODE(7)"}, {54, "OPCODE(54)"}, {0, "OPCODE(0)"},
		{OpInitBswap, "FUSE_INIT_BSWAP_RESERVED"},
	} {
		if got := c.op.String(); got != c.want {
			t.Errorf("Opcode(%d).String() = %q, want %q", uint32(c.op), got, c.want)
		}
	}
	// Every opcode 1..53 but the unused 7 and 19 has a name.
	for op := Opcode(1); op <= OpCopyFileRange64; op++ {
		if strings.HasPrefix(op.String(), "OPCODE(") != (op == 7 || op == 19) {
			t.Errorf("Opcode(%d).String() = %q", uint32(op), op.String())
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = OpRead.String() }); n != 0 {
		t.Errorf("Opcode.String allocates %v times", n)
	}
}

func TestInitFlags(t *testing.T) {
	f := MakeInitFlags(uint32(InitAsyncRead|InitExt), uint32(InitPassthrough>>32))
	if f != InitAsyncRead|InitExt|InitPassthrough {
		t.Fatalf("MakeInitFlags = %#x", uint64(f))
	}
	lo, hi := f.Split()
	if lo != 1|1<<30 || hi != 1<<5 {
		t.Fatalf("Split = %#x, %#x", lo, hi)
	}
	if got, want := f.String(), "ASYNC_READ|INIT_EXT|PASSTHROUGH"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if got, want := InitFlags(1<<50|1<<42).String(), "REQUEST_TIMEOUT|1<<50"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if InitFlags(0).String() != "0" {
		t.Error("empty set does not print 0")
	}
	if NotifyPrune.String() != "PRUNE" || NotifyCode(10).String() != "NOTIFY(10)" {
		t.Error("NotifyCode.String")
	}
}

func TestCodecAllocs(t *testing.T) {
	b := make([]byte, 256)
	n := testing.AllocsPerRun(100, func() {
		var h InHeader
		var e EntryOut
		h.Unmarshal(b)
		e.Marshal(b)
	})
	if n != 0 {
		t.Errorf("codecs allocate %v times per run", n)
	}
}

// FuzzABI decodes arbitrary bytes as every struct: no panic, and decoding
// the encoding gives the same value.
func FuzzABI(f *testing.F) {
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 300))
	f.Add(make([]byte, 40))
	f.Fuzz(func(t *testing.T, b []byte) {
		out := make([]byte, 300)
		for _, ct := range codecTypes {
			v := ct.New()
			ok := v.Unmarshal(b)
			if ok != (len(b) >= ct.Size) {
				t.Fatalf("%s: Unmarshal(%d bytes) = %v", ct.Name, len(b), ok)
			}
			if !ok {
				continue
			}
			if !v.Marshal(out) {
				t.Fatalf("%s: Marshal failed", ct.Name)
			}
			w := ct.New()
			w.Unmarshal(out)
			if !reflect.DeepEqual(v, w) {
				t.Fatalf("%s: round trip changed the value", ct.Name)
			}
		}
	})
}
