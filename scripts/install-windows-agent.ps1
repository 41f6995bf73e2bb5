<#
  Installs the fleetpatch agent on a Windows Server machine so that it runs at every boot as
  LocalSystem (Windows Update needs it), and restarts when it stops.

    .\install-windows-agent.ps1 -Server https://fleetpatch.example.com -EnrollKey fpe_... `
        [-Agent .\fleetpatch-agent.exe] [-ServiceWrapper .\WinSW-x64.exe]
    .\install-windows-agent.ps1 -Uninstall [-ServiceWrapper ...]

  The agent is the self-contained fleetpatch-agent.exe found beside this script (the Windows zip of
  `npm run package` carries both); without it, the .mjs bundle on an installed Node.js 18 or later
  (-AgentBundle .\fleetpatch-agent.mjs, -Node 'C:\Program Files\nodejs\node.exe').

  The agent cannot answer the Service Control Manager by itself, so a real Windows service needs a
  service wrapper: give -ServiceWrapper the path of WinSW (github.com/winsw/winsw, one MIT-licensed
  .exe) and the agent is installed as the service "fleetpatch-agent". Without it, the agent is
  registered as a scheduled task that starts at boot as SYSTEM and is restarted every minute
  should it stop: the same effect with nothing but Windows.

  The enrollment key is used once: the script waits for the agent to enroll (identity.json in
  the state folder), then registers it again without the key.

  Not run on a Windows machine where this was written: see "Windows machines" in docs/machines.md.
#>
param(
  [string]$Server,
  [string]$EnrollKey,
  [string]$Agent = (Join-Path $PSScriptRoot 'fleetpatch-agent.exe'),
  [string]$AgentBundle = (Join-Path $PSScriptRoot 'fleetpatch-agent.mjs'),
  [string]$Node = '',
  [string]$InstallDir = (Join-Path $env:ProgramFiles 'fleetpatch-agent'),
  [string]$StateDir = (Join-Path $env:ProgramData 'fleetpatch-agent'),
  [string]$ServiceWrapper = '',
  [switch]$Uninstall
)

$ErrorActionPreference = 'Stop'
$Name = 'fleetpatch-agent'

$principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
  throw 'Run this script from an elevated PowerShell (Run as administrator).'
}

function Remove-Agent {
  if (Get-ScheduledTask -TaskName $Name -ErrorAction SilentlyContinue) {
    Stop-ScheduledTask -TaskName $Name -ErrorAction SilentlyContinue
    Unregister-ScheduledTask -TaskName $Name -Confirm:$false
  }
  $wrapper = Join-Path $InstallDir "$Name.exe"
  if ((Get-Service -Name $Name -ErrorAction SilentlyContinue) -and (Test-Path $wrapper)) {
    & $wrapper stop | Out-Null
    & $wrapper uninstall | Out-Null
  }
}

if ($Uninstall) {
  Remove-Agent
  Write-Host "Removed $Name. Its identity stays in $StateDir; delete that folder and remove the machine in fleetpatch to forget it."
  exit 0
}

if (-not $Server) { throw '-Server URL is required (the fleetpatch server, e.g. https://fleetpatch.example.com).' }
$installationType = (Get-ItemProperty 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion').InstallationType
if ($installationType -eq 'Client') { throw 'This is a Windows client edition: fleetpatch manages Windows Server only.' }
New-Item -ItemType Directory -Force -Path $InstallDir | Out-Null
if (Test-Path $Agent) {
  # Stopped first: Windows does not let a running executable be overwritten. In a folder of its
  # own, since the service wrapper takes the name fleetpatch-agent.exe in the install folder.
  Remove-Agent
  New-Item -ItemType Directory -Force -Path (Join-Path $InstallDir 'bin') | Out-Null
  $Program = Join-Path $InstallDir 'bin\fleetpatch-agent.exe'
  Copy-Item -Force $Agent $Program
  $programArguments = @()
} else {
  if (-not $Node) { $Node = (Get-Command node.exe -ErrorAction SilentlyContinue).Source }
  if (-not $Node -or -not (Test-Path $Node)) { throw "Neither $Agent nor Node.js was found: put fleetpatch-agent.exe beside this script (or pass -Agent), or install Node.js 18 or later for the .mjs bundle." }
  if (-not (Test-Path $AgentBundle)) { throw "The agent bundle $AgentBundle is missing: copy dist/agent/fleetpatch-agent.mjs from a fleetpatch build next to this script, or pass -AgentBundle." }
  Copy-Item -Force $AgentBundle (Join-Path $InstallDir 'fleetpatch-agent.mjs')
  $Program = $Node
  $programArguments = @("`"$(Join-Path $InstallDir 'fleetpatch-agent.mjs')`"")
}

function Register-Agent([string]$key) {
  $arguments = $programArguments + @('run', '--server', $Server, '--state-dir', "`"$StateDir`"")
  if ($key) { $arguments += @('--enroll-key', $key) }
  Remove-Agent
  if ($ServiceWrapper) {
    $wrapper = Join-Path $InstallDir "$Name.exe"
    Copy-Item -Force $ServiceWrapper $wrapper
    $xml = @"
<service>
  <id>$Name</id>
  <name>fleetpatch agent</name>
  <description>Assesses and installs Windows updates for fleetpatch.</description>
  <executable>$([Security.SecurityElement]::Escape($Program))</executable>
  <arguments>$([Security.SecurityElement]::Escape($arguments -join ' '))</arguments>
  <startmode>Automatic</startmode>
  <onfailure action="restart" delay="60 sec"/>
  <stoptimeout>30 sec</stoptimeout>
  <log mode="roll-by-size"><sizeThreshold>10240</sizeThreshold><keepFiles>5</keepFiles></log>
</service>
"@
    Set-Content -Path (Join-Path $InstallDir "$Name.xml") -Value $xml -Encoding UTF8
    & $wrapper install | Out-Null
    & $wrapper start | Out-Null
  } else {
    $action = New-ScheduledTaskAction -Execute $Program -Argument ($arguments -join ' ') -WorkingDirectory $InstallDir
    $trigger = New-ScheduledTaskTrigger -AtStartup
    $system = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
    # No time limit (the agent runs for good), restarted every minute should it stop, also on battery.
    $settings = New-ScheduledTaskSettingsSet -ExecutionTimeLimit ([TimeSpan]::Zero) -RestartCount 9999 -RestartInterval (New-TimeSpan -Minutes 1) -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -StartWhenAvailable
    Register-ScheduledTask -TaskName $Name -Action $action -Trigger $trigger -Principal $system -Settings $settings -Description 'fleetpatch agent: assesses and installs Windows updates.' | Out-Null
    Start-ScheduledTask -TaskName $Name
  }
}

$identity = Join-Path $StateDir 'identity.json'
if (Test-Path $identity) {
  Register-Agent ''
  Write-Host "$Name is installed and already enrolled ($identity)."
  exit 0
}
if (-not $EnrollKey) { throw '-EnrollKey KEY is required the first time (create one with the createEnrollmentKey mutation).' }
Register-Agent $EnrollKey
$until = (Get-Date).AddMinutes(2)
while (-not (Test-Path $identity) -and (Get-Date) -lt $until) { Start-Sleep -Seconds 2 }
if (-not (Test-Path $identity)) {
  throw "The agent did not enroll within 2 minutes. Check that this machine reaches $Server, and the agent's output ($(if ($ServiceWrapper) { "$InstallDir\$Name.out.log" } else { 'Task Scheduler history' }))."
}
# Enrolled: register it again without the key, so the key is not left in the service's arguments.
Register-Agent ''
Write-Host "$Name is installed, enrolled and running as LocalSystem."
