<#
  fleetpatch agent: the Windows Update Agent (WUA) side of the Windows backend.

  Shipped inside the agent (the bundle inlines this file; the agent writes it to its work folder and
  runs it with Windows PowerShell 5.1: powershell.exe -NoProfile -NonInteractive -ExecutionPolicy
  Bypass -File). It prints exactly one JSON document on stdout; progress lines go to stderr, so the
  agent can stream them into the deployment's job output while the document stays whole.

  Modes:
    -Mode Assess       every applicable update not installed and not hidden, the machine's pending
                       reboot, the configured update source, the last successful install time.
    -Mode Status       the last successful install time (the agent's 15-minute look) and the
                       pending reboot, without a search: cheap enough to run often.
    -Mode Install -UpdateIds id[,id...] -Deadline 2026-01-01T03:00:00Z
                       downloads and installs those updates in that order, one result per update;
                       starts no new update (and no install after a download) past the deadline.

  The property names below are the contract with src/agent/backends/windows.ts: a test reads this
  file for every `name = ` key it builds and checks them against the parser's schema, so keep one
  key per line in the hashtables that form the document.
#>
param(
  [Parameter(Mandatory = $true)][ValidateSet('Assess', 'Status', 'Install')][string]$Mode,
  [string[]]$UpdateIds = @(),
  [string]$Deadline = ''
)

$ErrorActionPreference = 'Stop'
$SchemaVersion = 1

# UTF-8 bytes straight to the standard streams: through [Console] a pipe gets the OEM code page
# (titles in other languages would arrive garbled), and setting [Console]::OutputEncoding fails
# when there is no console at all, as under a service.
$Utf8 = New-Object System.Text.UTF8Encoding $false
$StandardOutput = [Console]::OpenStandardOutput()
$StandardError = [Console]::OpenStandardError()

function Write-Utf8($stream, [string]$text) {
  $bytes = $Utf8.GetBytes($text)
  $stream.Write($bytes, 0, $bytes.Length)
  $stream.Flush()
}

function Write-Progress-Line([string]$text) {
  Write-Utf8 $StandardError "$text`n"
}

function ConvertTo-IsoTime($value) {
  # WUA answers "never" with a date in 1601 or 1899 rather than null.
  if ($null -eq $value) { return $null }
  $date = [DateTime]$value
  if ($date.Year -lt 2000) { return $null }
  # WUA's dates are UTC already (Kind Unspecified): only a local one is converted.
  if ($date.Kind -eq [DateTimeKind]::Local) { $date = $date.ToUniversalTime() }
  return $date.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", [Globalization.CultureInfo]::InvariantCulture)
}

function ConvertTo-StringArray($collection) {
  $items = New-Object System.Collections.Generic.List[string]
  if ($null -ne $collection) {
    foreach ($item in $collection) { if ($item) { $items.Add([string]$item) } }
  }
  return , $items.ToArray()
}

function Test-RegistryKey([string]$path) {
  return [bool](Test-Path -LiteralPath $path)
}

function Get-RegistryValue([string]$path, [string]$name) {
  $item = Get-ItemProperty -LiteralPath $path -Name $name -ErrorAction SilentlyContinue
  if ($null -eq $item) { return $null }
  return $item.$name
}

function Get-LastInstallSuccess {
  $auto = New-Object -ComObject Microsoft.Update.AutoUpdate
  return ConvertTo-IsoTime $auto.Results.LastInstallationSuccessDate
}

function Get-PendingReboot {
  $systemInfo = New-Object -ComObject Microsoft.Update.SystemInfo
  $renames = Get-RegistryValue 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager' 'PendingFileRenameOperations'
  return @{
    windowsUpdate = [bool]($systemInfo.RebootRequired -or (Test-RegistryKey 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired'))
    componentBasedServicing = Test-RegistryKey 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending'
    pendingFileRenameOperations = [bool]($null -ne $renames -and @($renames | Where-Object { $_ }).Count -gt 0)
  }
}

function Get-UpdateSource {
  # Group policy decides: a WSUS server when UseWUServer is 1 and WUServer is set.
  $policy = 'HKLM:\SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate'
  $server = Get-RegistryValue $policy 'WUServer'
  $useServer = Get-RegistryValue "$policy\AU" 'UseWUServer'
  if ($server -and $useServer -eq 1) {
    return @{
      kind = 'WSUS'
      url = [string]$server
    }
  }
  # Otherwise the default automatic-updates service: Microsoft Update when registered, else Windows Update.
  $manager = New-Object -ComObject Microsoft.Update.ServiceManager
  foreach ($service in $manager.Services) {
    if ($service.IsDefaultAUService -and $service.ServiceID -eq '7971f918-a847-4430-9279-4a52d1efe18d') {
      return @{
        kind = 'MICROSOFT_UPDATE'
        url = $null
      }
    }
  }
  return @{
    kind = 'WINDOWS_UPDATE'
    url = $null
  }
}

function Get-Classification($update) {
  foreach ($category in $update.Categories) {
    if ($category.Type -eq 'UpdateClassification') {
      return @{
        id = [string]$category.CategoryID
        name = [string]$category.Name
      }
    }
  }
  return $null
}

function ConvertTo-UpdateRecord($update) {
  $cves = @()
  # IUpdate2 and later carry CveIDs; older WUA versions do not.
  if ($null -ne ($update | Get-Member -Name CveIDs -ErrorAction SilentlyContinue)) { $cves = ConvertTo-StringArray $update.CveIDs }
  return @{
    title = [string]$update.Title
    kbArticleIds = ConvertTo-StringArray $update.KBArticleIDs
    updateId = [string]$update.Identity.UpdateID
    revision = [int]$update.Identity.RevisionNumber
    classification = Get-Classification $update
    msrcSeverity = $(if ($update.MsrcSeverity) { [string]$update.MsrcSeverity } else { $null })
    cveIds = $cves
    # When Microsoft published (or last re-released) the update: WUA's closest thing to an advisory's issue date.
    lastDeploymentChangeTime = ConvertTo-IsoTime $update.LastDeploymentChangeTime
    securityBulletinIds = ConvertTo-StringArray $update.SecurityBulletinIDs
    supersededUpdateIds = ConvertTo-StringArray $update.SupersededUpdateIDs
    maxDownloadSize = [double]$update.MaxDownloadSize
    rebootBehavior = [int]$update.InstallationBehavior.RebootBehavior
    isDownloaded = [bool]$update.IsDownloaded
    isHidden = [bool]$update.IsHidden
  }
}

function New-Session {
  $session = New-Object -ComObject Microsoft.Update.Session
  $session.ClientApplicationID = 'fleetpatch agent'
  return $session
}

function Format-HResult([int]$hresult) {
  return '0x{0:X8}' -f $hresult
}

function Get-InnermostException($exception) {
  # A COM failure arrives wrapped ("Exception calling "Search" with "1" argument(s)"): the HRESULT
  # that says what went wrong is the innermost one's.
  while ($null -ne $exception.InnerException) { $exception = $exception.InnerException }
  return $exception
}

function ConvertTo-ErrorRecord($exception) {
  $inner = Get-InnermostException $exception
  return @{
    hresult = Format-HResult $inner.HResult
    message = [string]$inner.Message
  }
}

function Invoke-Assess {
  $session = New-Session
  $searcher = $session.CreateUpdateSearcher()
  $source = Get-UpdateSource
  Write-Progress-Line "searching for updates ($($source.kind)$(if ($source.url) { " $($source.url)" }))"
  $updates = New-Object System.Collections.Generic.List[object]
  $searchError = $null
  try {
    $result = $searcher.Search('IsInstalled=0 and IsHidden=0')
    foreach ($update in $result.Updates) { $updates.Add((ConvertTo-UpdateRecord $update)) }
  } catch {
    $searchError = ConvertTo-ErrorRecord $_.Exception
  }
  return @{
    schemaVersion = $SchemaVersion
    mode = 'Assess'
    updates = $updates.ToArray()
    searchError = $searchError
    rebootPending = Get-PendingReboot
    updateSource = $source
    lastInstallSuccess = Get-LastInstallSuccess
  }
}

function Invoke-Status {
  return @{
    schemaVersion = $SchemaVersion
    mode = 'Status'
    lastInstallSuccess = Get-LastInstallSuccess
    rebootPending = Get-PendingReboot
  }
}

function New-InstallResult([string]$updateId, $update) {
  return @{
    updateId = $updateId
    title = $(if ($update) { [string]$update.Title } else { $null })
    started = $false
    resultCode = 0
    hresult = $null
    message = $null
    rebootRequired = $false
  }
}

function Invoke-Install {
  # Under -File an array parameter arrives as one string: "id1,id2" is split here.
  $ids = @($UpdateIds | ForEach-Object { $_ -split ',' } | ForEach-Object { $_.Trim() } | Where-Object { $_ })
  if ($ids.Count -eq 0) { throw 'Install needs -UpdateIds: the WUA update ids to install.' }
  $deadlineUtc = [DateTime]::MaxValue
  if ($Deadline) { $deadlineUtc = [DateTime]::Parse($Deadline, [Globalization.CultureInfo]::InvariantCulture, [Globalization.DateTimeStyles]::AdjustToUniversal) }
  $session = New-Session
  $searcher = $session.CreateUpdateSearcher()
  foreach ($id in $ids) { if ($id -notmatch '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$') { throw "Not a Windows Update id: $id" } }
  Write-Progress-Line "searching for $($ids.Count) update(s)"
  # Only these updates: a search by id is far quicker than the full search of an assessment.
  $criteria = ($ids | ForEach-Object { "IsInstalled=0 and UpdateID='$_'" }) -join ' or '
  $byId = @{}
  foreach ($update in $searcher.Search($criteria).Updates) { $byId[[string]$update.Identity.UpdateID] = $update }

  $results = New-Object System.Collections.Generic.List[object]
  foreach ($id in $ids) {
    $update = $byId[$id]
    $entry = New-InstallResult $id $update
    $results.Add($entry)
    if ($null -eq $update) {
      $entry.message = 'Windows Update does not offer this update any more (installed, superseded or withdrawn since the assessment).'
      continue
    }
    if ([DateTime]::UtcNow -ge $deadlineUtc) {
      $entry.message = 'The deadline passed before this update could start.'
      continue
    }
    $entry.started = $true
    try {
      if (-not $update.EulaAccepted) { $update.AcceptEula() }
      $collection = New-Object -ComObject Microsoft.Update.UpdateColl
      [void]$collection.Add($update)
      if (-not $update.IsDownloaded) {
        Write-Progress-Line "downloading $($update.Title)"
        $downloader = $session.CreateUpdateDownloader()
        $downloader.Updates = $collection
        $download = $downloader.Download()
        if ($download.ResultCode -ne 2 -and $download.ResultCode -ne 3) {
          $entry.resultCode = [int]$download.ResultCode
          $entry.hresult = Format-HResult ($download.GetUpdateResult(0).HResult)
          $entry.message = 'The download failed.'
          continue
        }
        if ([DateTime]::UtcNow -ge $deadlineUtc) {
          # Downloaded, but installing now would run past the window: leave it for the next one.
          $entry.started = $false
          $entry.message = 'The deadline passed while the update downloaded; it is downloaded but not installed.'
          continue
        }
      }
      Write-Progress-Line "installing $($update.Title)"
      $installer = $session.CreateUpdateInstaller()
      $installer.Updates = $collection
      $install = $installer.Install()
      $one = $install.GetUpdateResult(0)
      $entry.resultCode = [int]$one.ResultCode
      $entry.hresult = Format-HResult $one.HResult
      $entry.rebootRequired = [bool]$one.RebootRequired
      Write-Progress-Line "result $($one.ResultCode) ($($entry.hresult)) for $($update.Title)"
    } catch {
      $installError = ConvertTo-ErrorRecord $_.Exception
      $entry.resultCode = 4
      $entry.hresult = $installError.hresult
      $entry.message = $installError.message
      Write-Progress-Line "error $($entry.hresult) for $($update.Title): $($entry.message)"
    }
  }
  $systemInfo = New-Object -ComObject Microsoft.Update.SystemInfo
  return @{
    schemaVersion = $SchemaVersion
    mode = 'Install'
    results = $results.ToArray()
    rebootRequired = [bool]$systemInfo.RebootRequired
  }
}

try {
  switch ($Mode) {
    'Assess' { $document = Invoke-Assess }
    'Status' { $document = Invoke-Status }
    'Install' { $document = Invoke-Install }
  }
  Write-Utf8 $StandardOutput ($document | ConvertTo-Json -Depth 8 -Compress)
  exit 0
} catch {
  # The whole script failed (WUA service disabled, COM not registered): one document that says so.
  $failure = @{
    schemaVersion = $SchemaVersion
    mode = $Mode
    fatal = ConvertTo-ErrorRecord $_.Exception
  }
  Write-Utf8 $StandardOutput ($failure | ConvertTo-Json -Depth 8 -Compress)
  exit 1
}
