// Package hostile is the hostile-local-user suite: it builds ./cmd/fastfsd,
// runs it as root the way an operator would, and attacks it from children
// that run as uid 65534 (SysProcAttr.Credential), asserting that they never
// get in:
//
//   - the vhost-user socket (fastfsd virtiofs --socket-path) and the 9P unix
//     socket (fastfsd 9p --listen unix:PATH) of a root daemon refuse their
//     connect(2), also with --socket-group set to a group they are not in,
//     and a connect loop racing 200 daemon starts of each never connects
//     (the loop also tries the private directory the socket is born in);
//   - over a 9P unix socket whose group they are in, they act as
//     themselves: Tattach naming uid 0 is refused, what they create belongs
//     to uid 65534, and they can make no setuid-root file nor chown/chmod
//     root's files, nor open a file whose POSIX ACL denies them what its
//     mode bits would allow (also with --xattr=false);
//   - fastfsd 9p refuses a non-loopback tcp listen without its opt-in flag.
//
// Each test first proves its attacker works (the same child connects to a
// socket that is open to it), so a broken child cannot pass for a safe
// daemon.
//
// It has no non-test code. The tests need root and the go tool; they skip
// naming what is missing (fail under CI=true).
package hostile
