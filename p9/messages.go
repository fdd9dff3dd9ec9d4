package p9

// Rlerror is the body of a Rlerror message.
type Rlerror struct {
	Ecode uint32
}

// Type implements Message.
func (*Rlerror) Type() MsgType { return MsgRlerror }

func (m *Rlerror) decode(d *decoder) {
	m.Ecode = d.u32()
}

func (m *Rlerror) encode(e *encoder) {
	e.u32(m.Ecode)
}

// Tstatfs is the body of a Tstatfs message.
type Tstatfs struct {
	Fid uint32
}

// Type implements Message.
func (*Tstatfs) Type() MsgType { return MsgTstatfs }

func (m *Tstatfs) decode(d *decoder) {
	m.Fid = d.u32()
}

func (m *Tstatfs) encode(e *encoder) {
	e.u32(m.Fid)
}

// Rstatfs is the body of a Rstatfs message.
type Rstatfs struct {
	FsType  uint32
	Bsize   uint32
	Blocks  uint64
	Bfree   uint64
	Bavail  uint64
	Files   uint64
	Ffree   uint64
	Fsid    uint64
	Namelen uint32
}

// Type implements Message.
func (*Rstatfs) Type() MsgType { return MsgRstatfs }

func (m *Rstatfs) decode(d *decoder) {
	m.FsType = d.u32()
	m.Bsize = d.u32()
	m.Blocks = d.u64()
	m.Bfree = d.u64()
	m.Bavail = d.u64()
	m.Files = d.u64()
	m.Ffree = d.u64()
	m.Fsid = d.u64()
	m.Namelen = d.u32()
}

func (m *Rstatfs) encode(e *encoder) {
	e.u32(m.FsType)
	e.u32(m.Bsize)
	e.u64(m.Blocks)
	e.u64(m.Bfree)
	e.u64(m.Bavail)
	e.u64(m.Files)
	e.u64(m.Ffree)
	e.u64(m.Fsid)
	e.u32(m.Namelen)
}

// Tlopen is the body of a Tlopen message.
type Tlopen struct {
	Fid   uint32
	Flags uint32
}

// Type implements Message.
func (*Tlopen) Type() MsgType { return MsgTlopen }

func (m *Tlopen) decode(d *decoder) {
	m.Fid = d.u32()
	m.Flags = d.u32()
}

func (m *Tlopen) encode(e *encoder) {
	e.u32(m.Fid)
	e.u32(m.Flags)
}

// Rlopen is the body of a Rlopen message.
type Rlopen struct {
	QID    QID
	Iounit uint32
}

// Type implements Message.
func (*Rlopen) Type() MsgType { return MsgRlopen }

func (m *Rlopen) decode(d *decoder) {
	d.qid(&m.QID)
	m.Iounit = d.u32()
}

func (m *Rlopen) encode(e *encoder) {
	e.qid(&m.QID)
	e.u32(m.Iounit)
}

// Tlcreate is the body of a Tlcreate message.
type Tlcreate struct {
	Fid   uint32
	Name  []byte
	Flags uint32
	Mode  uint32
	Gid   uint32
}

// Type implements Message.
func (*Tlcreate) Type() MsgType { return MsgTlcreate }

func (m *Tlcreate) decode(d *decoder) {
	m.Fid = d.u32()
	m.Name = d.str()
	m.Flags = d.u32()
	m.Mode = d.u32()
	m.Gid = d.u32()
}

func (m *Tlcreate) encode(e *encoder) {
	e.u32(m.Fid)
	e.str(m.Name)
	e.u32(m.Flags)
	e.u32(m.Mode)
	e.u32(m.Gid)
}

// Rlcreate is the body of a Rlcreate message.
type Rlcreate struct {
	QID    QID
	Iounit uint32
}

// Type implements Message.
func (*Rlcreate) Type() MsgType { return MsgRlcreate }

func (m *Rlcreate) decode(d *decoder) {
	d.qid(&m.QID)
	m.Iounit = d.u32()
}

func (m *Rlcreate) encode(e *encoder) {
	e.qid(&m.QID)
	e.u32(m.Iounit)
}

// Tsymlink is the body of a Tsymlink message.
type Tsymlink struct {
	Fid    uint32
	Name   []byte
	Target []byte
	Gid    uint32
}

// Type implements Message.
func (*Tsymlink) Type() MsgType { return MsgTsymlink }

func (m *Tsymlink) decode(d *decoder) {
	m.Fid = d.u32()
	m.Name = d.str()
	m.Target = d.str()
	m.Gid = d.u32()
}

func (m *Tsymlink) encode(e *encoder) {
	e.u32(m.Fid)
	e.str(m.Name)
	e.str(m.Target)
	e.u32(m.Gid)
}

// Rsymlink is the body of a Rsymlink message.
type Rsymlink struct {
	QID QID
}

// Type implements Message.
func (*Rsymlink) Type() MsgType { return MsgRsymlink }

func (m *Rsymlink) decode(d *decoder) {
	d.qid(&m.QID)
}

func (m *Rsymlink) encode(e *encoder) {
	e.qid(&m.QID)
}

// Tmknod is the body of a Tmknod message.
type Tmknod struct {
	Dfid  uint32
	Name  []byte
	Mode  uint32
	Major uint32
	Minor uint32
	Gid   uint32
}

// Type implements Message.
func (*Tmknod) Type() MsgType { return MsgTmknod }

func (m *Tmknod) decode(d *decoder) {
	m.Dfid = d.u32()
	m.Name = d.str()
	m.Mode = d.u32()
	m.Major = d.u32()
	m.Minor = d.u32()
	m.Gid = d.u32()
}

func (m *Tmknod) encode(e *encoder) {
	e.u32(m.Dfid)
	e.str(m.Name)
	e.u32(m.Mode)
	e.u32(m.Major)
	e.u32(m.Minor)
	e.u32(m.Gid)
}

// Rmknod is the body of a Rmknod message.
type Rmknod struct {
	QID QID
}

// Type implements Message.
func (*Rmknod) Type() MsgType { return MsgRmknod }

func (m *Rmknod) decode(d *decoder) {
	d.qid(&m.QID)
}

func (m *Rmknod) encode(e *encoder) {
	e.qid(&m.QID)
}

// Trename is the body of a Trename message.
type Trename struct {
	Fid  uint32
	Dfid uint32
	Name []byte
}

// Type implements Message.
func (*Trename) Type() MsgType { return MsgTrename }

func (m *Trename) decode(d *decoder) {
	m.Fid = d.u32()
	m.Dfid = d.u32()
	m.Name = d.str()
}

func (m *Trename) encode(e *encoder) {
	e.u32(m.Fid)
	e.u32(m.Dfid)
	e.str(m.Name)
}

// Rrename is the body of a Rrename message.
type Rrename struct {
}

// Type implements Message.
func (*Rrename) Type() MsgType { return MsgRrename }

func (m *Rrename) decode(d *decoder) {
}

func (m *Rrename) encode(e *encoder) {
}

// Treadlink is the body of a Treadlink message.
type Treadlink struct {
	Fid uint32
}

// Type implements Message.
func (*Treadlink) Type() MsgType { return MsgTreadlink }

func (m *Treadlink) decode(d *decoder) {
	m.Fid = d.u32()
}

func (m *Treadlink) encode(e *encoder) {
	e.u32(m.Fid)
}

// Rreadlink is the body of a Rreadlink message.
type Rreadlink struct {
	Target []byte
}

// Type implements Message.
func (*Rreadlink) Type() MsgType { return MsgRreadlink }

func (m *Rreadlink) decode(d *decoder) {
	m.Target = d.str()
}

func (m *Rreadlink) encode(e *encoder) {
	e.str(m.Target)
}

// Tgetattr is the body of a Tgetattr message.
type Tgetattr struct {
	Fid  uint32
	Mask uint64
}

// Type implements Message.
func (*Tgetattr) Type() MsgType { return MsgTgetattr }

func (m *Tgetattr) decode(d *decoder) {
	m.Fid = d.u32()
	m.Mask = d.u64()
}

func (m *Tgetattr) encode(e *encoder) {
	e.u32(m.Fid)
	e.u64(m.Mask)
}

// Rgetattr is the body of a Rgetattr message.
type Rgetattr struct {
	Valid       uint64
	QID         QID
	Mode        uint32
	UID         uint32
	GID         uint32
	Nlink       uint64
	Rdev        uint64
	Size        uint64
	Blksize     uint64
	Blocks      uint64
	AtimeSec    uint64
	AtimeNsec   uint64
	MtimeSec    uint64
	MtimeNsec   uint64
	CtimeSec    uint64
	CtimeNsec   uint64
	BtimeSec    uint64
	BtimeNsec   uint64
	Gen         uint64
	DataVersion uint64
}

// Type implements Message.
func (*Rgetattr) Type() MsgType { return MsgRgetattr }

func (m *Rgetattr) decode(d *decoder) {
	m.Valid = d.u64()
	d.qid(&m.QID)
	m.Mode = d.u32()
	m.UID = d.u32()
	m.GID = d.u32()
	m.Nlink = d.u64()
	m.Rdev = d.u64()
	m.Size = d.u64()
	m.Blksize = d.u64()
	m.Blocks = d.u64()
	m.AtimeSec = d.u64()
	m.AtimeNsec = d.u64()
	m.MtimeSec = d.u64()
	m.MtimeNsec = d.u64()
	m.CtimeSec = d.u64()
	m.CtimeNsec = d.u64()
	m.BtimeSec = d.u64()
	m.BtimeNsec = d.u64()
	m.Gen = d.u64()
	m.DataVersion = d.u64()
}

func (m *Rgetattr) encode(e *encoder) {
	e.u64(m.Valid)
	e.qid(&m.QID)
	e.u32(m.Mode)
	e.u32(m.UID)
	e.u32(m.GID)
	e.u64(m.Nlink)
	e.u64(m.Rdev)
	e.u64(m.Size)
	e.u64(m.Blksize)
	e.u64(m.Blocks)
	e.u64(m.AtimeSec)
	e.u64(m.AtimeNsec)
	e.u64(m.MtimeSec)
	e.u64(m.MtimeNsec)
	e.u64(m.CtimeSec)
	e.u64(m.CtimeNsec)
	e.u64(m.BtimeSec)
	e.u64(m.BtimeNsec)
	e.u64(m.Gen)
	e.u64(m.DataVersion)
}

// Tsetattr is the body of a Tsetattr message.
type Tsetattr struct {
	Fid       uint32
	Valid     uint32
	Mode      uint32
	UID       uint32
	GID       uint32
	Size      uint64
	AtimeSec  uint64
	AtimeNsec uint64
	MtimeSec  uint64
	MtimeNsec uint64
}

// Type implements Message.
func (*Tsetattr) Type() MsgType { return MsgTsetattr }

func (m *Tsetattr) decode(d *decoder) {
	m.Fid = d.u32()
	m.Valid = d.u32()
	m.Mode = d.u32()
	m.UID = d.u32()
	m.GID = d.u32()
	m.Size = d.u64()
	m.AtimeSec = d.u64()
	m.AtimeNsec = d.u64()
	m.MtimeSec = d.u64()
	m.MtimeNsec = d.u64()
}

func (m *Tsetattr) encode(e *encoder) {
	e.u32(m.Fid)
	e.u32(m.Valid)
	e.u32(m.Mode)
	e.u32(m.UID)
	e.u32(m.GID)
	e.u64(m.Size)
	e.u64(m.AtimeSec)
	e.u64(m.AtimeNsec)
	e.u64(m.MtimeSec)
	e.u64(m.MtimeNsec)
}

// Rsetattr is the body of a Rsetattr message.
type Rsetattr struct {
}

// Type implements Message.
func (*Rsetattr) Type() MsgType { return MsgRsetattr }

func (m *Rsetattr) decode(d *decoder) {
}

func (m *Rsetattr) encode(e *encoder) {
}

// Txattrwalk is the body of a Txattrwalk message.
type Txattrwalk struct {
	Fid    uint32
	Newfid uint32
	Name   []byte
}

// Type implements Message.
func (*Txattrwalk) Type() MsgType { return MsgTxattrwalk }

func (m *Txattrwalk) decode(d *decoder) {
	m.Fid = d.u32()
	m.Newfid = d.u32()
	m.Name = d.str()
}

func (m *Txattrwalk) encode(e *encoder) {
	e.u32(m.Fid)
	e.u32(m.Newfid)
	e.str(m.Name)
}

// Rxattrwalk is the body of a Rxattrwalk message.
type Rxattrwalk struct {
	Size uint64
}

// Type implements Message.
func (*Rxattrwalk) Type() MsgType { return MsgRxattrwalk }

func (m *Rxattrwalk) decode(d *decoder) {
	m.Size = d.u64()
}

func (m *Rxattrwalk) encode(e *encoder) {
	e.u64(m.Size)
}

// Txattrcreate is the body of a Txattrcreate message.
type Txattrcreate struct {
	Fid      uint32
	Name     []byte
	AttrSize uint64
	Flags    uint32
}

// Type implements Message.
func (*Txattrcreate) Type() MsgType { return MsgTxattrcreate }

func (m *Txattrcreate) decode(d *decoder) {
	m.Fid = d.u32()
	m.Name = d.str()
	m.AttrSize = d.u64()
	m.Flags = d.u32()
}

func (m *Txattrcreate) encode(e *encoder) {
	e.u32(m.Fid)
	e.str(m.Name)
	e.u64(m.AttrSize)
	e.u32(m.Flags)
}

// Rxattrcreate is the body of a Rxattrcreate message.
type Rxattrcreate struct {
}

// Type implements Message.
func (*Rxattrcreate) Type() MsgType { return MsgRxattrcreate }

func (m *Rxattrcreate) decode(d *decoder) {
}

func (m *Rxattrcreate) encode(e *encoder) {
}

// Treaddir is the body of a Treaddir message.
type Treaddir struct {
	Fid    uint32
	Offset uint64
	Count  uint32
}

// Type implements Message.
func (*Treaddir) Type() MsgType { return MsgTreaddir }

func (m *Treaddir) decode(d *decoder) {
	m.Fid = d.u32()
	m.Offset = d.u64()
	m.Count = d.u32()
}

func (m *Treaddir) encode(e *encoder) {
	e.u32(m.Fid)
	e.u64(m.Offset)
	e.u32(m.Count)
}

// Rreaddir is the body of a Rreaddir message.
type Rreaddir struct {
	Data []byte
}

// Type implements Message.
func (*Rreaddir) Type() MsgType { return MsgRreaddir }

func (m *Rreaddir) decode(d *decoder) {
	m.Data = d.take(int(d.u32()))
}

func (m *Rreaddir) encode(e *encoder) {
	e.u32(uint32(len(m.Data)))
	e.bytes(m.Data)
}

// Tfsync is the body of a Tfsync message.
type Tfsync struct {
	Fid      uint32
	Datasync uint32
}

// Type implements Message.
func (*Tfsync) Type() MsgType { return MsgTfsync }

func (m *Tfsync) decode(d *decoder) {
	m.Fid = d.u32()
	m.Datasync = d.u32()
}

func (m *Tfsync) encode(e *encoder) {
	e.u32(m.Fid)
	e.u32(m.Datasync)
}

// Rfsync is the body of a Rfsync message.
type Rfsync struct {
}

// Type implements Message.
func (*Rfsync) Type() MsgType { return MsgRfsync }

func (m *Rfsync) decode(d *decoder) {
}

func (m *Rfsync) encode(e *encoder) {
}

// Tlock is the body of a Tlock message.
type Tlock struct {
	Fid      uint32
	LockType uint8
	Flags    uint32
	Start    uint64
	Length   uint64
	ProcID   uint32
	ClientID []byte
}

// Type implements Message.
func (*Tlock) Type() MsgType { return MsgTlock }

func (m *Tlock) decode(d *decoder) {
	m.Fid = d.u32()
	m.LockType = d.u8()
	m.Flags = d.u32()
	m.Start = d.u64()
	m.Length = d.u64()
	m.ProcID = d.u32()
	m.ClientID = d.str()
}

func (m *Tlock) encode(e *encoder) {
	e.u32(m.Fid)
	e.u8(m.LockType)
	e.u32(m.Flags)
	e.u64(m.Start)
	e.u64(m.Length)
	e.u32(m.ProcID)
	e.str(m.ClientID)
}

// Rlock is the body of a Rlock message.
type Rlock struct {
	Status uint8
}

// Type implements Message.
func (*Rlock) Type() MsgType { return MsgRlock }

func (m *Rlock) decode(d *decoder) {
	m.Status = d.u8()
}

func (m *Rlock) encode(e *encoder) {
	e.u8(m.Status)
}

// Tgetlock is the body of a Tgetlock message.
type Tgetlock struct {
	Fid      uint32
	LockType uint8
	Start    uint64
	Length   uint64
	ProcID   uint32
	ClientID []byte
}

// Type implements Message.
func (*Tgetlock) Type() MsgType { return MsgTgetlock }

func (m *Tgetlock) decode(d *decoder) {
	m.Fid = d.u32()
	m.LockType = d.u8()
	m.Start = d.u64()
	m.Length = d.u64()
	m.ProcID = d.u32()
	m.ClientID = d.str()
}

func (m *Tgetlock) encode(e *encoder) {
	e.u32(m.Fid)
	e.u8(m.LockType)
	e.u64(m.Start)
	e.u64(m.Length)
	e.u32(m.ProcID)
	e.str(m.ClientID)
}

// Rgetlock is the body of a Rgetlock message.
type Rgetlock struct {
	LockType uint8
	Start    uint64
	Length   uint64
	ProcID   uint32
	ClientID []byte
}

// Type implements Message.
func (*Rgetlock) Type() MsgType { return MsgRgetlock }

func (m *Rgetlock) decode(d *decoder) {
	m.LockType = d.u8()
	m.Start = d.u64()
	m.Length = d.u64()
	m.ProcID = d.u32()
	m.ClientID = d.str()
}

func (m *Rgetlock) encode(e *encoder) {
	e.u8(m.LockType)
	e.u64(m.Start)
	e.u64(m.Length)
	e.u32(m.ProcID)
	e.str(m.ClientID)
}

// Tlink is the body of a Tlink message.
type Tlink struct {
	Dfid uint32
	Fid  uint32
	Name []byte
}

// Type implements Message.
func (*Tlink) Type() MsgType { return MsgTlink }

func (m *Tlink) decode(d *decoder) {
	m.Dfid = d.u32()
	m.Fid = d.u32()
	m.Name = d.str()
}

func (m *Tlink) encode(e *encoder) {
	e.u32(m.Dfid)
	e.u32(m.Fid)
	e.str(m.Name)
}

// Rlink is the body of a Rlink message.
type Rlink struct {
}

// Type implements Message.
func (*Rlink) Type() MsgType { return MsgRlink }

func (m *Rlink) decode(d *decoder) {
}

func (m *Rlink) encode(e *encoder) {
}

// Tmkdir is the body of a Tmkdir message.
type Tmkdir struct {
	Dfid uint32
	Name []byte
	Mode uint32
	Gid  uint32
}

// Type implements Message.
func (*Tmkdir) Type() MsgType { return MsgTmkdir }

func (m *Tmkdir) decode(d *decoder) {
	m.Dfid = d.u32()
	m.Name = d.str()
	m.Mode = d.u32()
	m.Gid = d.u32()
}

func (m *Tmkdir) encode(e *encoder) {
	e.u32(m.Dfid)
	e.str(m.Name)
	e.u32(m.Mode)
	e.u32(m.Gid)
}

// Rmkdir is the body of a Rmkdir message.
type Rmkdir struct {
	QID QID
}

// Type implements Message.
func (*Rmkdir) Type() MsgType { return MsgRmkdir }

func (m *Rmkdir) decode(d *decoder) {
	d.qid(&m.QID)
}

func (m *Rmkdir) encode(e *encoder) {
	e.qid(&m.QID)
}

// Trenameat is the body of a Trenameat message.
type Trenameat struct {
	OldDirFid uint32
	OldName   []byte
	NewDirFid uint32
	NewName   []byte
}

// Type implements Message.
func (*Trenameat) Type() MsgType { return MsgTrenameat }

func (m *Trenameat) decode(d *decoder) {
	m.OldDirFid = d.u32()
	m.OldName = d.str()
	m.NewDirFid = d.u32()
	m.NewName = d.str()
}

func (m *Trenameat) encode(e *encoder) {
	e.u32(m.OldDirFid)
	e.str(m.OldName)
	e.u32(m.NewDirFid)
	e.str(m.NewName)
}

// Rrenameat is the body of a Rrenameat message.
type Rrenameat struct {
}

// Type implements Message.
func (*Rrenameat) Type() MsgType { return MsgRrenameat }

func (m *Rrenameat) decode(d *decoder) {
}

func (m *Rrenameat) encode(e *encoder) {
}

// Tunlinkat is the body of a Tunlinkat message.
type Tunlinkat struct {
	DirFid uint32
	Name   []byte
	Flags  uint32
}

// Type implements Message.
func (*Tunlinkat) Type() MsgType { return MsgTunlinkat }

func (m *Tunlinkat) decode(d *decoder) {
	m.DirFid = d.u32()
	m.Name = d.str()
	m.Flags = d.u32()
}

func (m *Tunlinkat) encode(e *encoder) {
	e.u32(m.DirFid)
	e.str(m.Name)
	e.u32(m.Flags)
}

// Runlinkat is the body of a Runlinkat message.
type Runlinkat struct {
}

// Type implements Message.
func (*Runlinkat) Type() MsgType { return MsgRunlinkat }

func (m *Runlinkat) decode(d *decoder) {
}

func (m *Runlinkat) encode(e *encoder) {
}

// Tversion is the body of a Tversion message.
type Tversion struct {
	Msize   uint32
	Version []byte
}

// Type implements Message.
func (*Tversion) Type() MsgType { return MsgTversion }

func (m *Tversion) decode(d *decoder) {
	m.Msize = d.u32()
	m.Version = d.str()
}

func (m *Tversion) encode(e *encoder) {
	e.u32(m.Msize)
	e.str(m.Version)
}

// Rversion is the body of a Rversion message.
type Rversion struct {
	Msize   uint32
	Version []byte
}

// Type implements Message.
func (*Rversion) Type() MsgType { return MsgRversion }

func (m *Rversion) decode(d *decoder) {
	m.Msize = d.u32()
	m.Version = d.str()
}

func (m *Rversion) encode(e *encoder) {
	e.u32(m.Msize)
	e.str(m.Version)
}

// Tauth is the body of a Tauth message.
type Tauth struct {
	Afid   uint32
	Uname  []byte
	Aname  []byte
	NUname uint32
}

// Type implements Message.
func (*Tauth) Type() MsgType { return MsgTauth }

func (m *Tauth) decode(d *decoder) {
	m.Afid = d.u32()
	m.Uname = d.str()
	m.Aname = d.str()
	m.NUname = d.u32()
}

func (m *Tauth) encode(e *encoder) {
	e.u32(m.Afid)
	e.str(m.Uname)
	e.str(m.Aname)
	e.u32(m.NUname)
}

// Rauth is the body of a Rauth message.
type Rauth struct {
	QID QID
}

// Type implements Message.
func (*Rauth) Type() MsgType { return MsgRauth }

func (m *Rauth) decode(d *decoder) {
	d.qid(&m.QID)
}

func (m *Rauth) encode(e *encoder) {
	e.qid(&m.QID)
}

// Tattach is the body of a Tattach message.
type Tattach struct {
	Fid    uint32
	Afid   uint32
	Uname  []byte
	Aname  []byte
	NUname uint32
}

// Type implements Message.
func (*Tattach) Type() MsgType { return MsgTattach }

func (m *Tattach) decode(d *decoder) {
	m.Fid = d.u32()
	m.Afid = d.u32()
	m.Uname = d.str()
	m.Aname = d.str()
	m.NUname = d.u32()
}

func (m *Tattach) encode(e *encoder) {
	e.u32(m.Fid)
	e.u32(m.Afid)
	e.str(m.Uname)
	e.str(m.Aname)
	e.u32(m.NUname)
}

// Rattach is the body of a Rattach message.
type Rattach struct {
	QID QID
}

// Type implements Message.
func (*Rattach) Type() MsgType { return MsgRattach }

func (m *Rattach) decode(d *decoder) {
	d.qid(&m.QID)
}

func (m *Rattach) encode(e *encoder) {
	e.qid(&m.QID)
}

// Tflush is the body of a Tflush message.
type Tflush struct {
	OldTag uint16
}

// Type implements Message.
func (*Tflush) Type() MsgType { return MsgTflush }

func (m *Tflush) decode(d *decoder) {
	m.OldTag = d.u16()
}

func (m *Tflush) encode(e *encoder) {
	e.u16(m.OldTag)
}

// Rflush is the body of a Rflush message.
type Rflush struct {
}

// Type implements Message.
func (*Rflush) Type() MsgType { return MsgRflush }

func (m *Rflush) decode(d *decoder) {
}

func (m *Rflush) encode(e *encoder) {
}

// Twalk is the body of a Twalk message.
type Twalk struct {
	Fid    uint32
	Newfid uint32
	// NNames names of Names are used (≤ MaxWalkElem); each is a view.
	NNames int
	Names  [MaxWalkElem][]byte
}

// Type implements Message.
func (*Twalk) Type() MsgType { return MsgTwalk }

func (m *Twalk) decode(d *decoder) {
	m.Fid = d.u32()
	m.Newfid = d.u32()
	n := int(d.u16())
	if n > MaxWalkElem {
		d.bad = true
		return
	}
	m.NNames = n
	for i := 0; i < n; i++ {
		m.Names[i] = d.str()
	}
}

func (m *Twalk) encode(e *encoder) {
	e.u32(m.Fid)
	e.u32(m.Newfid)
	if m.NNames < 0 || m.NNames > MaxWalkElem {
		e.bad = true
		return
	}
	e.u16(uint16(m.NNames))
	for i := 0; i < m.NNames; i++ {
		e.str(m.Names[i])
	}
}

// Rwalk is the body of a Rwalk message.
type Rwalk struct {
	// NQIDs QIDs of QIDs are used (≤ MaxWalkElem).
	NQIDs int
	QIDs  [MaxWalkElem]QID
}

// Type implements Message.
func (*Rwalk) Type() MsgType { return MsgRwalk }

func (m *Rwalk) decode(d *decoder) {
	n := int(d.u16())
	if n > MaxWalkElem {
		d.bad = true
		return
	}
	m.NQIDs = n
	for i := 0; i < n; i++ {
		d.qid(&m.QIDs[i])
	}
}

func (m *Rwalk) encode(e *encoder) {
	if m.NQIDs < 0 || m.NQIDs > MaxWalkElem {
		e.bad = true
		return
	}
	e.u16(uint16(m.NQIDs))
	for i := 0; i < m.NQIDs; i++ {
		e.qid(&m.QIDs[i])
	}
}

// Tread is the body of a Tread message.
type Tread struct {
	Fid    uint32
	Offset uint64
	Count  uint32
}

// Type implements Message.
func (*Tread) Type() MsgType { return MsgTread }

func (m *Tread) decode(d *decoder) {
	m.Fid = d.u32()
	m.Offset = d.u64()
	m.Count = d.u32()
}

func (m *Tread) encode(e *encoder) {
	e.u32(m.Fid)
	e.u64(m.Offset)
	e.u32(m.Count)
}

// Rread is the body of a Rread message.
type Rread struct {
	Data []byte
}

// Type implements Message.
func (*Rread) Type() MsgType { return MsgRread }

func (m *Rread) decode(d *decoder) {
	m.Data = d.take(int(d.u32()))
}

func (m *Rread) encode(e *encoder) {
	e.u32(uint32(len(m.Data)))
	e.bytes(m.Data)
}

// Twrite is the body of a Twrite message.
type Twrite struct {
	Fid    uint32
	Offset uint64
	Data   []byte
}

// Type implements Message.
func (*Twrite) Type() MsgType { return MsgTwrite }

func (m *Twrite) decode(d *decoder) {
	m.Fid = d.u32()
	m.Offset = d.u64()
	m.Data = d.take(int(d.u32()))
}

func (m *Twrite) encode(e *encoder) {
	e.u32(m.Fid)
	e.u64(m.Offset)
	e.u32(uint32(len(m.Data)))
	e.bytes(m.Data)
}

// Rwrite is the body of a Rwrite message.
type Rwrite struct {
	Count uint32
}

// Type implements Message.
func (*Rwrite) Type() MsgType { return MsgRwrite }

func (m *Rwrite) decode(d *decoder) {
	m.Count = d.u32()
}

func (m *Rwrite) encode(e *encoder) {
	e.u32(m.Count)
}

// Tclunk is the body of a Tclunk message.
type Tclunk struct {
	Fid uint32
}

// Type implements Message.
func (*Tclunk) Type() MsgType { return MsgTclunk }

func (m *Tclunk) decode(d *decoder) {
	m.Fid = d.u32()
}

func (m *Tclunk) encode(e *encoder) {
	e.u32(m.Fid)
}

// Rclunk is the body of a Rclunk message.
type Rclunk struct {
}

// Type implements Message.
func (*Rclunk) Type() MsgType { return MsgRclunk }

func (m *Rclunk) decode(d *decoder) {
}

func (m *Rclunk) encode(e *encoder) {
}

// Tremove is the body of a Tremove message.
type Tremove struct {
	Fid uint32
}

// Type implements Message.
func (*Tremove) Type() MsgType { return MsgTremove }

func (m *Tremove) decode(d *decoder) {
	m.Fid = d.u32()
}

func (m *Tremove) encode(e *encoder) {
	e.u32(m.Fid)
}

// Rremove is the body of a Rremove message.
type Rremove struct {
}

// Type implements Message.
func (*Rremove) Type() MsgType { return MsgRremove }

func (m *Rremove) decode(d *decoder) {
}

func (m *Rremove) encode(e *encoder) {
}

// newMessage returns a zero message of type t, or nil for a type this
// package does not know.
func newMessage(t MsgType) Message {
	switch t {
	case MsgRlerror:
		return new(Rlerror)
	case MsgTstatfs:
		return new(Tstatfs)
	case MsgRstatfs:
		return new(Rstatfs)
	case MsgTlopen:
		return new(Tlopen)
	case MsgRlopen:
		return new(Rlopen)
	case MsgTlcreate:
		return new(Tlcreate)
	case MsgRlcreate:
		return new(Rlcreate)
	case MsgTsymlink:
		return new(Tsymlink)
	case MsgRsymlink:
		return new(Rsymlink)
	case MsgTmknod:
		return new(Tmknod)
	case MsgRmknod:
		return new(Rmknod)
	case MsgTrename:
		return new(Trename)
	case MsgRrename:
		return new(Rrename)
	case MsgTreadlink:
		return new(Treadlink)
	case MsgRreadlink:
		return new(Rreadlink)
	case MsgTgetattr:
		return new(Tgetattr)
	case MsgRgetattr:
		return new(Rgetattr)
	case MsgTsetattr:
		return new(Tsetattr)
	case MsgRsetattr:
		return new(Rsetattr)
	case MsgTxattrwalk:
		return new(Txattrwalk)
	case MsgRxattrwalk:
		return new(Rxattrwalk)
	case MsgTxattrcreate:
		return new(Txattrcreate)
	case MsgRxattrcreate:
		return new(Rxattrcreate)
	case MsgTreaddir:
		return new(Treaddir)
	case MsgRreaddir:
		return new(Rreaddir)
	case MsgTfsync:
		return new(Tfsync)
	case MsgRfsync:
		return new(Rfsync)
	case MsgTlock:
		return new(Tlock)
	case MsgRlock:
		return new(Rlock)
	case MsgTgetlock:
		return new(Tgetlock)
	case MsgRgetlock:
		return new(Rgetlock)
	case MsgTlink:
		return new(Tlink)
	case MsgRlink:
		return new(Rlink)
	case MsgTmkdir:
		return new(Tmkdir)
	case MsgRmkdir:
		return new(Rmkdir)
	case MsgTrenameat:
		return new(Trenameat)
	case MsgRrenameat:
		return new(Rrenameat)
	case MsgTunlinkat:
		return new(Tunlinkat)
	case MsgRunlinkat:
		return new(Runlinkat)
	case MsgTversion:
		return new(Tversion)
	case MsgRversion:
		return new(Rversion)
	case MsgTauth:
		return new(Tauth)
	case MsgRauth:
		return new(Rauth)
	case MsgTattach:
		return new(Tattach)
	case MsgRattach:
		return new(Rattach)
	case MsgTflush:
		return new(Tflush)
	case MsgRflush:
		return new(Rflush)
	case MsgTwalk:
		return new(Twalk)
	case MsgRwalk:
		return new(Rwalk)
	case MsgTread:
		return new(Tread)
	case MsgRread:
		return new(Rread)
	case MsgTwrite:
		return new(Twrite)
	case MsgRwrite:
		return new(Rwrite)
	case MsgTclunk:
		return new(Tclunk)
	case MsgRclunk:
		return new(Rclunk)
	case MsgTremove:
		return new(Tremove)
	case MsgRremove:
		return new(Rremove)
	}
	return nil
}

// allTypes lists every message type newMessage knows, for tests.
var allTypes = []MsgType{MsgRlerror, MsgTstatfs, MsgRstatfs, MsgTlopen, MsgRlopen, MsgTlcreate, MsgRlcreate, MsgTsymlink, MsgRsymlink, MsgTmknod, MsgRmknod, MsgTrename, MsgRrename, MsgTreadlink, MsgRreadlink, MsgTgetattr, MsgRgetattr, MsgTsetattr, MsgRsetattr, MsgTxattrwalk, MsgRxattrwalk, MsgTxattrcreate, MsgRxattrcreate, MsgTreaddir, MsgRreaddir, MsgTfsync, MsgRfsync, MsgTlock, MsgRlock, MsgTgetlock, MsgRgetlock, MsgTlink, MsgRlink, MsgTmkdir, MsgRmkdir, MsgTrenameat, MsgRrenameat, MsgTunlinkat, MsgRunlinkat, MsgTversion, MsgRversion, MsgTauth, MsgRauth, MsgTattach, MsgRattach, MsgTflush, MsgRflush, MsgTwalk, MsgRwalk, MsgTread, MsgRread, MsgTwrite, MsgRwrite, MsgTclunk, MsgRclunk, MsgTremove, MsgRremove}
