// vcsim for cloudmeter's tests: govmomi's vCenter simulator (Debian's golang-github-vmware-govmomi-dev) with
// VMs created per host (exact placement) and a PerformanceManager whose QueryPerf follows vCenter's rules and
// serves the series a test pushes (stock vcsim's QueryPerf adds noise and drops zeros).
//
// Build: GO111MODULE=off GOPATH=/usr/share/gocode go build -o vcsim . (tests/vmware/vcsim_server.py does it).
// It prints one JSON line {"url": ..., "perf": ...} once listening, and stops on SIGTERM or SIGINT.
//
// QueryPerf, as vCenter answers it:
//   - intervalId 20 (realtime; 0 means it) or one of historicalInterval's samplingPeriods, else InvalidArgument;
//   - samples are the ends of aligned intervals t with startTime < t <= endTime (both optional), oldest first;
//   - a series at interval I is kept for its level's length back from "now" (realtime: 3600 s);
//   - the sample times are the union over the metrics asked for; a metric with no value at one is -1;
//   - maxSample keeps the newest samples, for realtime queries only (ignored for historical intervals);
//   - instance "*" is every instance the entity has data for; an entity with no samples is left out;
//   - a historical query of more metrics (entities x counters) than config.vpxd.stats.maxQueryMetrics (64 while
//     unset) is refused with InvalidArgument querySpec.size.
//
// POST /cloudmeter/perf with JSON {"reset": bool, "now": epoch seconds or null (the real clock),
// "series": [{"entity": "vm-44", "counter": "cpu.usagemhz.average", "instance": "", "interval": 20,
// "points": [[end epoch seconds, value], ...]}]} sets what it serves.
//
// Migrations: vcsim's RelocateVM_Task posts no event and leaves both hosts' vm lists as they were. A registry
// hook (migrations) posts the DrsVmMigratedEvent vCenter would (vm, host = the new host, sourceHost) when a VM's
// runtime.host changes, and moves the VM from the old host's vm list to the new one's.
//
// The simulator logs every property update (log.Printf); its log is discarded: nobody reads the pipe.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

const realtime = 20

type seriesKey struct {
	entity   string
	counter  int32
	instance string
	interval int32
}

type store struct {
	sync.Mutex
	now    *time.Time
	series map[seriesKey]map[int64]int64 // end epoch seconds -> value
}

var data = store{series: map[seriesKey]map[int64]int64{}}

type perfManager struct {
	simulator.PerformanceManager // by value: a pointer makes the PropertyCollector panic
	byName                       map[string]int32
}

func (p *perfManager) keep(interval int32) (int64, bool) {
	if interval == realtime {
		return 3600, true
	}
	for _, h := range p.HistoricalInterval {
		if h.SamplingPeriod == interval && h.Enabled {
			return int64(h.Length), true
		}
	}
	return 0, false
}

func (p *perfManager) QueryPerf(ctx *simulator.Context, req *types.QueryPerf) soap.HasFault {
	body := new(methods.QueryPerfBody)
	body.Res = new(types.QueryPerfResponse)
	data.Lock()
	defer data.Unlock()
	now := time.Now()
	if data.now != nil {
		now = *data.now
	}
	for _, qs := range req.QuerySpec {
		if simulator.Map.Get(qs.Entity) == nil {
			body.Fault_ = simulator.Fault("", &types.InvalidArgument{InvalidProperty: "entity"})
			return body
		}
		interval := qs.IntervalId
		if interval == 0 {
			interval = realtime
		}
		keep, ok := p.keep(interval)
		if !ok {
			body.Fault_ = simulator.Fault("", &types.InvalidArgument{InvalidProperty: "intervalId"})
			return body
		}
		if interval != realtime && !p.withinMaxQueryMetrics(req.QuerySpec) {
			body.Fault_ = simulator.Fault("exceeds config.vpxd.stats.maxQueryMetrics", &types.InvalidArgument{InvalidProperty: "querySpec.size"})
			return body
		}
		oldest := now.Unix() - keep // exclusive
		if qs.StartTime != nil && qs.StartTime.Unix() > oldest {
			oldest = qs.StartTime.Unix()
		}
		newest := now.Unix()
		if qs.EndTime != nil && qs.EndTime.Unix() < newest {
			newest = qs.EndTime.Unix()
		}
		type column struct {
			id     types.PerfMetricId
			points map[int64]int64
		}
		var columns []column
		for _, mid := range qs.MetricId {
			for key, points := range data.series {
				if key.entity != qs.Entity.Value || key.counter != mid.CounterId || key.interval != interval {
					continue
				}
				if mid.Instance != "*" && mid.Instance != key.instance {
					continue
				}
				columns = append(columns, column{types.PerfMetricId{CounterId: key.counter, Instance: key.instance}, points})
			}
		}
		sort.SliceStable(columns, func(i, j int) bool {
			a, b := columns[i].id, columns[j].id
			return a.CounterId < b.CounterId || (a.CounterId == b.CounterId && a.Instance < b.Instance)
		})
		seen := map[int64]bool{}
		for _, c := range columns {
			for t := range c.points {
				if t > oldest && t <= newest && t%int64(interval) == 0 {
					seen[t] = true
				}
			}
		}
		times := make([]int64, 0, len(seen))
		for t := range seen {
			times = append(times, t)
		}
		sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
		if interval == realtime && qs.MaxSample > 0 && int(qs.MaxSample) < len(times) {
			times = times[len(times)-int(qs.MaxSample):]
		}
		if len(times) == 0 {
			continue
		}
		metric := &types.PerfEntityMetric{PerfEntityMetricBase: types.PerfEntityMetricBase{Entity: qs.Entity}}
		for _, t := range times {
			metric.SampleInfo = append(metric.SampleInfo, types.PerfSampleInfo{Timestamp: time.Unix(t, 0).UTC(), Interval: interval})
		}
		for _, c := range columns {
			series := &types.PerfMetricIntSeries{PerfMetricSeries: types.PerfMetricSeries{Id: c.id}, Value: make([]int64, len(times))}
			for i, t := range times {
				if v, ok := c.points[t]; ok {
					series.Value[i] = v
				} else {
					series.Value[i] = -1
				}
			}
			metric.Value = append(metric.Value, series)
		}
		body.Res.Returnval = append(body.Res.Returnval, metric)
	}
	return body
}

// withinMaxQueryMetrics: vCenter refuses a historical query of more metrics (entity x counter) than its
// advanced setting config.vpxd.stats.maxQueryMetrics allows (64 while it is unset; -1 or 0: no limit).
func (p *perfManager) withinMaxQueryMetrics(specs []types.PerfQuerySpec) bool {
	limit := 64
	for _, option := range simulator.Map.OptionManager().Setting {
		setting := option.GetOptionValue()
		if setting.Key == "config.vpxd.stats.maxQueryMetrics" {
			limit, _ = strconv.Atoi(fmt.Sprint(setting.Value))
		}
	}
	metrics := 0
	for _, qs := range specs {
		metrics += len(qs.MetricId)
	}
	return limit <= 0 || metrics <= limit
}

type pushedSeries struct {
	Entity   string      `json:"entity"`
	Counter  string      `json:"counter"`
	Instance string      `json:"instance"`
	Interval int32       `json:"interval"`
	Points   [][2]int64 `json:"points"`
}

type push struct {
	Reset  bool           `json:"reset"`
	Now    *int64         `json:"now"`
	Series []pushedSeries `json:"series"`
}

func (p *perfManager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body push
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	data.Lock()
	defer data.Unlock()
	if body.Reset {
		data.series = map[seriesKey]map[int64]int64{}
	}
	data.now = nil
	if body.Now != nil {
		t := time.Unix(*body.Now, 0)
		data.now = &t
	}
	for _, s := range body.Series {
		counter, ok := p.byName[s.Counter]
		if !ok {
			http.Error(w, "unknown counter "+s.Counter, http.StatusBadRequest)
			return
		}
		key := seriesKey{s.Entity, counter, s.Instance, s.Interval}
		if data.series[key] == nil {
			data.series[key] = map[int64]int64{}
		}
		for _, point := range s.Points {
			data.series[key][point[0]] = point[1]
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// vCenter's default statistics levels (vcsim lists none).
var historical = []types.PerfInterval{
	{Key: 1, SamplingPeriod: 300, Name: "Past day", Length: 86400, Level: 1, Enabled: true},
	{Key: 2, SamplingPeriod: 1800, Name: "Past week", Length: 604800, Level: 1, Enabled: true},
	{Key: 3, SamplingPeriod: 7200, Name: "Past month", Length: 2592000, Level: 1, Enabled: true},
	{Key: 4, SamplingPeriod: 86400, Name: "Past year", Length: 31536000, Level: 1, Enabled: true},
}

func installPerfManager(c *vim25.Client) *perfManager {
	stock := simulator.Map.Get(*c.ServiceContent.PerfManager).(*simulator.PerformanceManager)
	p := &perfManager{PerformanceManager: *stock, byName: map[string]int32{}}
	p.HistoricalInterval = historical
	for _, info := range p.PerfCounter {
		name := info.GroupInfo.GetElementDescription().Key + "." + info.NameInfo.GetElementDescription().Key + "." + string(info.RollupType)
		p.byName[name] = info.Key
	}
	simulator.Map.Put(p)
	return p
}

func ints(list string) []int32 {
	var out []int32
	for _, field := range strings.Split(list, ",") {
		if field == "" {
			continue
		}
		n, err := strconv.Atoi(field)
		if err != nil {
			fmt.Fprintln(os.Stderr, "not a number:", field)
			os.Exit(2)
		}
		out = append(out, int32(n))
	}
	return out
}

// hosts sorted by name, each with the MHz per core and cores given (cycled), in every datacenter.
func configureHosts(ctx context.Context, c *vim25.Client, mhz, cores []int32) ([]mo.HostSystem, error) {
	v, err := view.NewManager(c).CreateContainerView(ctx, c.ServiceContent.RootFolder, []string{"HostSystem"}, true)
	if err != nil {
		return nil, err
	}
	defer func() { _ = v.Destroy(ctx) }()
	var hosts []mo.HostSystem
	if err := v.Retrieve(ctx, []string{"HostSystem"}, []string{"name", "parent"}, &hosts); err != nil {
		return nil, err
	}
	sort.Slice(hosts, func(i, j int) bool { return hosts[i].Name < hosts[j].Name })
	for i, h := range hosts {
		host := simulator.Map.Get(h.Self).(*simulator.HostSystem)
		summary := *host.Summary.Hardware
		hardware := *host.Hardware
		if len(mhz) > 0 {
			summary.CpuMhz = mhz[i%len(mhz)]
			hardware.CpuInfo.Hz = int64(summary.CpuMhz) * 1000000
		}
		if len(cores) > 0 {
			summary.NumCpuCores = int16(cores[i%len(cores)])
			hardware.CpuInfo.NumCpuCores = summary.NumCpuCores
		}
		host.Summary.Hardware = &summary
		host.Hardware = &hardware
	}
	return hosts, nil
}

func datacenterOf(ctx context.Context, c *vim25.Client, ref types.ManagedObjectReference) (*object.Datacenter, error) {
	for ref.Type != "Datacenter" {
		var entity mo.ManagedEntity
		if err := object.NewCommon(c, ref).Properties(ctx, ref, []string{"parent"}, &entity); err != nil {
			return nil, err
		}
		ref = *entity.Parent
	}
	return object.NewDatacenter(c, ref), nil
}

// createVMs creates perHost VMs on each host (numCPU 1-4, memory 1-4 GiB, a disk of 10+k GiB), powered on,
// and `templates` template VMs on the first host, each with createDate bornAt.
func createVMs(ctx context.Context, c *vim25.Client, hosts []mo.HostSystem, perHost, templates int, bornAt time.Time) error {
	for i, h := range hosts {
		dc, err := datacenterOf(ctx, c, h.Self)
		if err != nil {
			return err
		}
		folders, err := dc.Folders(ctx)
		if err != nil {
			return err
		}
		host := object.NewHostSystem(c, h.Self)
		pool, err := host.ResourcePool(ctx)
		if err != nil {
			return err
		}
		count := perHost
		if i == 0 {
			count += templates
		}
		for k := 0; k < count; k++ {
			name := fmt.Sprintf("%s-vm%d", h.Name, k)
			if k >= perHost {
				name = fmt.Sprintf("%s-template%d", h.Name, k-perHost)
			}
			config := types.VirtualMachineConfigSpec{
				Name:     name,
				GuestId:  string(types.VirtualMachineGuestOsIdentifierOtherGuest),
				NumCPUs:  int32(1 + k%4),
				MemoryMB: int64(1024 * (1 + k%4)),
				Files:    &types.VirtualMachineFileInfo{VmPathName: "[LocalDS_0]"},
			}
			var devices object.VirtualDeviceList
			scsi, _ := devices.CreateSCSIController("pvscsi")
			disk := devices.CreateDisk(scsi.(types.BaseVirtualController), types.ManagedObjectReference{},
				config.Files.VmPathName+" "+path.Join(name, "disk1.vmdk"))
			disk.CapacityInKB = int64(10+k) * 1024 * 1024
			devices = append(devices, scsi, disk)
			config.DeviceChange, _ = devices.ConfigSpec(types.VirtualDeviceConfigSpecOperationAdd)
			task, err := folders.VmFolder.CreateVM(ctx, config, pool, host)
			if err != nil {
				return err
			}
			info, err := task.WaitForResult(ctx, nil)
			if err != nil {
				return err
			}
			ref := info.Result.(types.ManagedObjectReference)
			vm := object.NewVirtualMachine(c, ref)
			// vcsim leaves the storage summary at 0: what vCenter reports as provisioned is the disk here
			capacity := disk.CapacityInKB * 1024
			created := simulator.Map.Get(ref).(*simulator.VirtualMachine)
			created.Summary.Storage = &types.VirtualMachineStorageSummary{
				Committed: capacity / 4, Uncommitted: capacity - capacity/4, Timestamp: time.Now(),
			}
			// vcsim sets no createDate (vSphere 6.7 and later do): the VMs were made `age` ago
			made := bornAt
			created.Config.CreateDate = &made
			if k >= perHost {
				if err := vm.MarkAsTemplate(ctx); err != nil {
					return err
				}
				continue
			}
			task, err = vm.PowerOn(ctx)
			if err == nil {
				err = task.Wait(ctx)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// migrations is the registry hook described at the top.
type migrations struct {
	ctx *simulator.Context
}

func (m *migrations) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "CloudmeterMigrations", Value: "migrations"}
}

func (m *migrations) PutObject(mo.Reference) {}

func (m *migrations) RemoveObject(types.ManagedObjectReference) {}

func (m *migrations) UpdateObject(obj mo.Reference, changes []types.PropertyChange) {
	vm, ok := obj.(*mo.VirtualMachine)
	if !ok || vm.Runtime.Host == nil {
		return
	}
	moved := false
	for _, change := range changes {
		moved = moved || change.Name == "runtime.host"
	}
	if !moved {
		return
	}
	to := simulator.Map.Get(*vm.Runtime.Host).(*simulator.HostSystem)
	var from *simulator.HostSystem
	for _, entity := range simulator.Map.All("HostSystem") {
		host := entity.(*simulator.HostSystem)
		for _, ref := range host.Vm {
			if ref == vm.Self {
				from = host
			}
		}
	}
	if from == nil || from.Self == to.Self {
		return
	}
	simulator.Map.RemoveReference(from, &from.Vm, vm.Self)
	simulator.Map.AppendReference(to, &to.Vm, vm.Self)
	event := &types.DrsVmMigratedEvent{VmMigratedEvent: types.VmMigratedEvent{
		VmEvent: types.VmEvent{Event: types.Event{
			Datacenter:      datacenterArgument(to.Self),
			ComputeResource: &types.ComputeResourceEventArgument{ComputeResource: *to.Parent, EntityEventArgument: entityArgument(*to.Parent)},
			Host:            &types.HostEventArgument{Host: to.Self, EntityEventArgument: entityArgument(to.Self)},
			Vm:              &types.VmEventArgument{Vm: vm.Self, EntityEventArgument: types.EntityEventArgument{Name: vm.Name}},
		}},
		SourceHost:       types.HostEventArgument{Host: from.Self, EntityEventArgument: entityArgument(from.Self)},
		SourceDatacenter: datacenterArgument(from.Self),
	}}
	manager := simulator.Map.EventManager()
	simulator.Map.WithLock(manager, func() { manager.PostEvent(m.ctx, &types.PostEvent{EventToPost: event}) })
}

func entityArgument(ref types.ManagedObjectReference) types.EntityEventArgument {
	return types.EntityEventArgument{Name: simulator.Map.Get(ref).(mo.Entity).Entity().Name}
}

func datacenterArgument(ref types.ManagedObjectReference) *types.DatacenterEventArgument {
	for ref.Type != "Datacenter" {
		ref = *simulator.Map.Get(ref).(mo.Entity).Entity().Parent
	}
	return &types.DatacenterEventArgument{Datacenter: ref, EntityEventArgument: entityArgument(ref)}
}

func main() {
	datacenters := flag.Int("dc", 1, "datacenters")
	clusters := flag.Int("cluster", 1, "clusters per datacenter")
	clusterHosts := flag.Int("cluster-host", 2, "hosts per cluster")
	standalone := flag.Int("host", 1, "standalone hosts per datacenter")
	perHost := flag.Int("vms-per-host", 2, "VMs created on each host")
	templates := flag.Int("templates", 1, "template VMs on the first host")
	mhz := flag.String("mhz", "", "MHz per core of the hosts in name order, cycled (e.g. 2000,2500)")
	cores := flag.String("cores", "", "cores of the hosts in name order, cycled (e.g. 8,16)")
	user := flag.String("user", "", "the only user accepted (default: any)")
	password := flag.String("password", "", "its password")
	age := flag.Duration("age", 30*24*time.Hour, "how long ago the VMs were created (their config.createDate)")
	flag.Parse()
	log.SetOutput(io.Discard)

	model := simulator.VPX()
	model.Datacenter = *datacenters
	model.Cluster = *clusters
	model.ClusterHost = *clusterHosts
	model.Host = *standalone
	model.Machine = 0
	model.Pool = 0
	model.Autostart = false
	if err := model.Create(); err != nil {
		fmt.Fprintln(os.Stderr, "create:", err)
		os.Exit(1)
	}
	defer model.Remove()
	model.Service.TLS = new(tls.Config)
	listen := &url.URL{Host: "127.0.0.1:0"}
	if *user != "" {
		listen.User = url.UserPassword(*user, *password)
	}
	model.Service.Listen = listen

	ctx := context.Background()
	server := model.Service.NewServer()
	defer server.Close()
	client, err := govmomi.NewClient(ctx, server.URL, true)
	if err != nil {
		fmt.Fprintln(os.Stderr, "login:", err)
		os.Exit(1)
	}
	hosts, err := configureHosts(ctx, client.Client, ints(*mhz), ints(*cores))
	if err == nil {
		err = createVMs(ctx, client.Client, hosts, *perHost, *templates, time.Now().Add(-*age).Truncate(time.Second).UTC())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "populate:", err)
		os.Exit(1)
	}
	_ = client.Logout(ctx)
	perf := installPerfManager(client.Client)
	model.Service.ServeMux.Handle("/cloudmeter/perf", perf)
	session := &simulator.Session{UserSession: types.UserSession{UserName: "vpxd-extension"}, Registry: simulator.NewRegistry()}
	simulator.Map.AddHandler(&migrations{&simulator.Context{Context: ctx, Session: session, Map: simulator.Map}})

	address := *server.URL
	address.User = nil
	line, _ := json.Marshal(map[string]string{"url": address.String(), "perf": "https://" + address.Host + "/cloudmeter/perf"})
	fmt.Println(string(line))

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	<-signals
}
