//go:build windows

// fleetpatch-agent-service.exe: the Windows service "fleetpatch-agent" that the MSI registers.
//
// The agent (fleetpatch-agent.exe, a Bun-compiled program) cannot answer the Service Control
// Manager itself, so this host does: it reports the service running, starts the agent beside it
// with the settings given to msiexec (SERVER, ENROLL_KEY: see adoptInstallSettings), starts it
// again 10 s after it exits (as systemd's Restart=always does on Linux; a self-update exits so that
// the new executable is started), and on stop or shutdown ends the agent process alone, never the
// installs it started (systemd's KillMode=process). The enrollment key is used once: once the
// agent has enrolled (identity.json in the state folder), the host deletes it from the registry.
//
// The state folder %ProgramData%\fleetpatch-agent is made with a protected ACL (SYSTEM and
// Administrators only): the machine's credential lives there.
package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
	"golang.org/x/sys/windows/svc"
)

const (
	serviceName  = "fleetpatch-agent"
	settingsPath = `SOFTWARE\fleetpatch-agent`
	restartDelay = 10 * time.Second
	// The log is moved aside past this size at each start of the agent: one old file is kept.
	logLimit = 10 << 20
	usage    = `fleetpatch-agent-service: the Windows service host of the fleetpatch agent.

The Service Control Manager starts it as the service "fleetpatch-agent" (the MSI registers it);
it runs fleetpatch-agent.exe from its own folder with the settings in the registry key
HKLM\SOFTWARE\fleetpatch-agent: Server (required), EnrollKey (the first time), Options (more
flags for "fleetpatch-agent run"); msiexec's SERVER and ENROLL_KEY arrive there through
HKLM\SOFTWARE\fleetpatch-agent\Install. The agent's output goes to
%ProgramData%\fleetpatch-agent\agent.log.
`
)

type settings struct {
	server, enrollKey, options string
}

func readSettings() (settings, error) {
	key, err := registry.OpenKey(registry.LOCAL_MACHINE, settingsPath, registry.QUERY_VALUE)
	if err != nil {
		return settings{}, fmt.Errorf("cannot open HKLM\\%s: %w", settingsPath, err)
	}
	defer key.Close()
	value := func(name string) string {
		v, _, err := key.GetStringValue(name)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(v)
	}
	return settings{server: value("Server"), enrollKey: value("EnrollKey"), options: value("Options")}, nil
}

// adoptInstallSettings moves what msiexec was given (SERVER, ENROLL_KEY, written by the MSI under
// ...\Install) into the host's own key, which no upgrade or removal of the product touches; a key
// given to an enrolled machine is not kept, and the MSI's copy of the key is deleted either way.
func adoptInstallSettings(enrolled bool) error {
	given, err := registry.OpenKey(registry.LOCAL_MACHINE, settingsPath+`\Install`, registry.QUERY_VALUE|registry.SET_VALUE)
	if err != nil {
		return nil // nothing given
	}
	defer given.Close()
	own, _, err := registry.CreateKey(registry.LOCAL_MACHINE, settingsPath, registry.QUERY_VALUE|registry.SET_VALUE)
	if err != nil {
		return err
	}
	defer own.Close()
	if server, _, err := given.GetStringValue("Server"); err == nil && strings.TrimSpace(server) != "" {
		if err := own.SetStringValue("Server", strings.TrimSpace(server)); err != nil {
			return err
		}
	}
	if enrollKey, _, err := given.GetStringValue("EnrollKey"); err == nil && strings.TrimSpace(enrollKey) != "" {
		if !enrolled {
			if err := own.SetStringValue("EnrollKey", strings.TrimSpace(enrollKey)); err != nil {
				return err
			}
		}
		return given.DeleteValue("EnrollKey")
	}
	return nil
}

func forgetEnrollKey() error {
	key, err := registry.OpenKey(registry.LOCAL_MACHINE, settingsPath, registry.SET_VALUE)
	if err != nil {
		return err
	}
	defer key.Close()
	return key.DeleteValue("EnrollKey")
}

// stateDir makes the state folder readable and writable by SYSTEM and Administrators only.
func stateDir() (string, error) {
	dir := filepath.Join(os.Getenv("ProgramData"), "fleetpatch-agent")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	sd, err := windows.SecurityDescriptorFromString("D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)")
	if err != nil {
		return "", err
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return "", err
	}
	err = windows.SetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT, windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION, nil, nil, dacl, nil)
	return dir, err
}

func openLog(dir string) (*os.File, error) {
	file := filepath.Join(dir, "agent.log")
	if info, err := os.Stat(file); err == nil && info.Size() > logLimit {
		_ = os.Rename(file, file+".1")
	}
	return os.OpenFile(file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
}

func logLine(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "%s fleetpatch-agent-service: %s\r\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
}

// runAgentOnce runs the agent until it exits or stop is closed; true when stopped.
func runAgentOnce(agent, dir string, log io.Writer, stop <-chan struct{}) bool {
	identity := filepath.Join(dir, "identity.json")
	_, statErr := os.Stat(identity)
	if err := adoptInstallSettings(statErr == nil); err != nil {
		logLine(log, "cannot take the settings msiexec was given: %v", err)
	}
	s, err := readSettings()
	if err == nil && s.server == "" {
		err = fmt.Errorf("the registry value HKLM\\%s\\Server is empty: reinstall with msiexec /i fleetpatch-agent.msi SERVER=https://... ENROLL_KEY=fpe_...", settingsPath)
	}
	if err != nil {
		logLine(log, "%v", err)
		return wait(stop, restartDelay)
	}
	args := append([]string{"run", "--server", s.server, "--state-dir", dir}, strings.Fields(s.options)...)
	cmd := exec.Command(agent, args...)
	cmd.Env = os.Environ()
	if s.enrollKey != "" {
		// In the environment, never on the command line, where any process list shows it.
		cmd.Env = append(cmd.Env, "FLEETPATCH_ENROLL_KEY="+s.enrollKey)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		logLine(log, "cannot start %s: %v", agent, err)
		return wait(stop, restartDelay)
	}
	logLine(log, "started %s (pid %d)", agent, cmd.Process.Pid)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			logLine(log, "the agent exited (%v); starting it again in %s", err, restartDelay)
			return wait(stop, restartDelay)
		case <-stop:
			// The agent alone: a package installer it started goes on, and the agent, back, waits for it.
			_ = cmd.Process.Kill()
			<-exited
			logLine(log, "stopped")
			return true
		case <-tick.C:
			if s.enrollKey != "" {
				if _, err := os.Stat(identity); err == nil {
					if err := forgetEnrollKey(); err == nil {
						logLine(log, "enrolled: the enrollment key is removed from the registry")
						s.enrollKey = ""
					}
				}
			}
		}
	}
}

func wait(stop <-chan struct{}, d time.Duration) bool {
	select {
	case <-stop:
		return true
	case <-time.After(d):
		return false
	}
}

type host struct{}

func (host) Execute(_ []string, requests <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.StartPending}
	self, err := os.Executable()
	if err != nil {
		return true, 1
	}
	agent := filepath.Join(filepath.Dir(self), "fleetpatch-agent.exe")
	dir, err := stateDir()
	if err != nil {
		return true, 2
	}
	log, err := openLog(dir)
	if err != nil {
		return true, 3
	}
	defer log.Close()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !runAgentOnce(agent, dir, log, stop) {
		}
	}()
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for request := range requests {
		switch request.Cmd {
		case svc.Interrogate:
			status <- request.CurrentStatus
		case svc.Stop, svc.Shutdown:
			status <- svc.Status{State: svc.StopPending}
			close(stop)
			<-done
			return false, 0
		}
	}
	return false, 0
}

func main() {
	for _, arg := range os.Args[1:] {
		if arg == "--help" || arg == "-h" {
			fmt.Print(usage)
			return
		}
	}
	isService, err := svc.IsWindowsService()
	if err != nil || !isService {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err := svc.Run(serviceName, host{}); err != nil {
		os.Exit(1)
	}
}
