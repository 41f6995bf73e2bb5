# Installs the fleetpatch agent on this Windows Server machine and enrolls it, in one line of an
# elevated PowerShell:
#
#   $env:FLEETPATCH_ENROLL_KEY='fpe_...'; irm https://SERVER/agent/install.ps1 | iex
#
# Served by the fleetpatch server, which fills in the lines between the markers. It checks the key
# with the server, downloads the Windows zip, checks its sha256, and runs the zip's
# install-windows-agent.ps1 with the server and the key (a scheduled task as SYSTEM, or a service
# with -ServiceWrapper: see that script). Not run on a Windows machine where this was written.

# --- the server's part ---
$FpDefaultServer = ''
$FpVersion = ''
$FpZip = ''
$FpZipSha256 = ''
$FpProblem = 'this script was not served by a fleetpatch server'
# --- end of the server's part ---

& {
  $ErrorActionPreference = 'Stop'
  function Fail([string]$Message) { Write-Host "fleetpatch install: $Message" -ForegroundColor Red; throw "fleetpatch install: $Message" }
  if ($FpProblem) { Fail $FpProblem }
  $principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
  if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) { Fail 'run this from an elevated PowerShell (Run as administrator).' }
  $server = if ($env:FLEETPATCH_SERVER) { $env:FLEETPATCH_SERVER.TrimEnd('/') } else { $FpDefaultServer }
  $key = $env:FLEETPATCH_ENROLL_KEY
  if (-not $key -or $key -notmatch '^fpe_[A-Za-z0-9_-]+$') { Fail "set the enrollment key first: `$env:FLEETPATCH_ENROLL_KEY='fpe_...'" }
  [Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12

  try {
    Invoke-RestMethod -Method Post -Uri "$server/agent/v1/enroll/check" -ContentType 'application/json' -Body (@{ enrollmentKey = $key } | ConvertTo-Json) | Out-Null
  } catch {
    $response = $_.Exception.Response
    if ($null -eq $response) { Fail "cannot reach the fleetpatch server at ${server}: $($_.Exception.Message)" }
    $message = try { ($_.ErrorDetails.Message | ConvertFrom-Json).error.message } catch { $_.Exception.Message }
    if ([int]$response.StatusCode -eq 403) { Fail "the server refused the enrollment key: $message" }
    Fail "the fleetpatch server at $server answered $([int]$response.StatusCode) to the key check: $message"
  }

  $work = Join-Path ([IO.Path]::GetTempPath()) ("fleetpatch-install-" + [Guid]::NewGuid())
  New-Item -ItemType Directory -Path $work | Out-Null
  try {
    $zip = Join-Path $work $FpZip
    Write-Host "fleetpatch install: downloading $FpZip from $server"
    Invoke-WebRequest -UseBasicParsing -Uri "$server/agent/download/$FpZip" -OutFile $zip
    $got = (Get-FileHash -Algorithm SHA256 -Path $zip).Hash.ToLowerInvariant()
    if ($got -ne $FpZipSha256) { Fail "the download of $FpZip is damaged or altered (sha256 $got, the server says $FpZipSha256): nothing was installed." }
    Expand-Archive -Path $zip -DestinationPath $work
    & (Join-Path $work 'install-windows-agent.ps1') -Server $server -EnrollKey $key -Agent (Join-Path $work 'fleetpatch-agent.exe')
    Write-Host "fleetpatch install: fleetpatch-agent $FpVersion is installed and enrolled."
  } finally {
    Remove-Item -Recurse -Force $work -ErrorAction SilentlyContinue
  }
}
